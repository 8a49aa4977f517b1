"""Bank statements: each line a credit, matched like a notification (`import_statement`)."""
