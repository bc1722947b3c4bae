"""The message search index: a Mroonga table (messaging/search.py). The engine is loaded
into MariaDB here when it is not yet (INSTALL SONAME, idempotent), so every database the
project migrates (`make run`'s, the tests', the chaos harness's own mysqld) gets it."""

from typing import Any

from django.db import migrations


def create_index(apps: Any, schema_editor: Any) -> None:
    from messaging import search

    with schema_editor.connection.cursor() as cursor:
        search.mroonga_ensure(cursor)
        cursor.execute(search.CREATE_TABLE)


def drop_index(apps: Any, schema_editor: Any) -> None:
    from messaging import search

    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {search.SEARCH_TABLE}")


class Migration(migrations.Migration):
    # Mroonga DDL is not transactional; MySQL commits DDL implicitly anyway.
    atomic = False

    dependencies = [
        ("messaging", "0003_seq_conflicts"),
    ]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
