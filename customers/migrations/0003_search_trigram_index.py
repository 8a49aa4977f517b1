"""Accent-insensitive search over 470,000 customers needs a trigram index, on PostgreSQL only.

`search_text` is already folded (lower-case, no diacritics) when written, so a plain trigram
index serves `ILIKE '%nguyen van a%'` without a table scan. SQLite, the embedded default for a
laptop demo, searches the same column without the index.
"""

from django.db import migrations


def _on_postgres(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("customers", "0002_payment_links")]

    operations = [
        migrations.RunPython(
            _on_postgres(
                "CREATE EXTENSION IF NOT EXISTS pg_trgm;"
                "CREATE INDEX IF NOT EXISTS customer_search_trgm ON customers_customer "
                "USING gin (search_text gin_trgm_ops);"
            ),
            _on_postgres("DROP INDEX IF EXISTS customer_search_trgm;"),
        ),
    ]
