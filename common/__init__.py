"""What every app of the portal may use, and which uses no app of ours."""
