"""The language switch keeps the page the visitor is on, query included."""

import pytest


@pytest.mark.django_db
def test_the_switch_keeps_the_query_and_replaces_lang(client):
    response = client.get("/?code=&page=2")
    assert 'href="?code=&amp;page=2&amp;lang=en"' in response.content.decode()
    english = client.get("/?page=2&lang=en")
    assert 'href="?page=2&amp;lang=vi"' in english.content.decode()
    assert english["Content-Language"] == "en"
