"""The admin page: upload, dry run, confirm, and its permission checks."""

from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from customers.models import Account
from integrations.csv_import import admin_views
from integrations.csv_import.admin_views import SESSION_KEY

pytestmark = pytest.mark.django_db

MAPPING = b"""
[[targets]]
target = "account"
file = "accounts.csv"

[targets.fields]
external_id = "id"
name = "company"
signup_date = { column = "signup", type = "date" }
"""

GOOD = b"id,company,signup\nA-1,Acme,2024-01-10\nA-2,Beta,2024-02-29\n"
ONE_BAD = GOOD + b"A-3,Gamma,2024-02-30\n"


@pytest.fixture(autouse=True)
def staging(settings, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path
    return tmp_path / "csv-imports"


def upload(client, csv: bytes = GOOD, **fields):
    data = {
        "mapping_file": SimpleUploadedFile("m.toml", MAPPING),
        "csv_files": [SimpleUploadedFile("accounts.csv", csv)],
        **fields,
    }
    return client.post(reverse("csv_import:upload"), data)


def staff_user(*permissions: str) -> User:
    user = User.objects.create_user("importer", password="x", is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def test_anonymous_redirected_to_login(client):
    response = client.get(reverse("csv_import:upload"))

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_form_lists_shipped_mappings(admin_client):
    response = admin_client.get(reverse("csv_import:upload"))

    assert response.status_code == 200
    assert b"ravenstack.toml" in response.content


def test_admin_index_links_to_the_import(client):
    client.force_login(staff_user("add_account", "view_account"))

    response = client.get(reverse("admin:index"))

    assert response.status_code == 200
    assert f'href="{reverse("csv_import:upload")}"'.encode() in response.content


def test_admin_index_hides_the_import_without_permission(client):
    client.force_login(staff_user("view_account"))

    response = client.get(reverse("admin:index"))

    assert response.status_code == 200
    assert reverse("csv_import:upload").encode() not in response.content


def test_staff_without_permission_rejected(client, staging):
    client.force_login(staff_user("add_account"))

    response = upload(client)

    assert response.status_code == 403
    assert Account.objects.count() == 0
    assert list(staging.iterdir()) == []


def test_dry_run_then_import(client, staging):
    client.force_login(staff_user("add_account", "change_account"))

    dry_run = upload(client)

    assert dry_run.status_code == 200
    assert dry_run.context["report"].targets[0].created == 2
    assert Account.objects.count() == 0
    token = dry_run.context["token"]
    assert (staging / token / "accounts.csv").read_bytes() == GOOD

    imported = client.post(
        reverse("csv_import:upload"), {"action": "import", "token": token}
    )

    assert imported.status_code == 200
    assert imported.context["report"].committed
    assert sorted(Account.objects.values_list("external_id", flat=True)) == [
        "A-1",
        "A-2",
    ]
    assert not (staging / token).exists()
    assert SESSION_KEY not in client.session


def test_second_confirmation_imports_nothing(admin_client):
    token = upload(admin_client).context["token"]
    admin_client.post(
        reverse("csv_import:upload"), {"action": "import", "token": token}
    )
    Account.objects.all().delete()

    again = admin_client.post(
        reverse("csv_import:upload"), {"action": "import", "token": token}
    )

    assert b"already imported or has expired" in again.content
    assert Account.objects.count() == 0


def test_rejected_row_hides_the_import_button(admin_client):
    response = upload(admin_client, csv=ONE_BAD)

    assert b"accounts.csv:4: column signup = &#x27;2024-02-30&#x27;" in (
        response.content
    )
    assert b'id="csv-import-confirm"' not in response.content


def test_skip_invalid_imports_the_valid_rows(admin_client):
    token = upload(admin_client, csv=ONE_BAD, skip_invalid="on").context["token"]

    response = admin_client.post(
        reverse("csv_import:upload"), {"action": "import", "token": token}
    )

    assert response.context["report"].rejected_total == 1
    assert Account.objects.count() == 2


def test_invalid_mapping_shown_on_the_form(admin_client, staging):
    data = {
        "mapping_file": SimpleUploadedFile("m.toml", b'[[targets]]\ntarget = "x"\n'),
        "csv_files": [SimpleUploadedFile("accounts.csv", GOOD)],
    }

    response = admin_client.post(reverse("csv_import:upload"), data)

    assert b"target = &#x27;x&#x27;" in response.content
    assert list(staging.iterdir()) == []


def test_mapping_choice_and_file_exclusive(admin_client):
    response = upload(admin_client, mapping="ravenstack")

    assert b"not both" in response.content


def test_only_csv_files_accepted(admin_client):
    data = {
        "mapping_file": SimpleUploadedFile("m.toml", MAPPING),
        "csv_files": [SimpleUploadedFile("accounts.xlsx", GOOD)],
    }

    response = admin_client.post(reverse("csv_import:upload"), data)

    assert b"is not a .csv file" in response.content


def test_file_over_the_size_limit_rejected(admin_client, monkeypatch):
    monkeypatch.setattr(admin_views, "MAX_FILE_BYTES", len(GOOD) - 1)

    response = upload(admin_client)

    assert b"accounts.csv is larger than" in response.content
    assert Account.objects.count() == 0


def test_two_files_with_one_name_rejected(admin_client, staging):
    data = {
        "mapping_file": SimpleUploadedFile("m.toml", MAPPING),
        "csv_files": [
            SimpleUploadedFile("accounts.csv", GOOD),
            SimpleUploadedFile("accounts.csv", ONE_BAD),
        ],
    }

    response = admin_client.post(reverse("csv_import:upload"), data)

    assert b"2 uploaded files are named accounts.csv" in response.content
    assert "report" not in response.context
    assert not staging.exists() or list(staging.iterdir()) == []


def test_mapping_error_hides_server_path(admin_client, staging):
    data = {
        "mapping_file": SimpleUploadedFile("crm.toml", b"\xff\xfe"),
        "csv_files": [SimpleUploadedFile("accounts.csv", GOOD)],
    }

    response = admin_client.post(reverse("csv_import:upload"), data)

    assert b"crm.toml is not UTF-8" in response.content
    assert str(staging).encode() not in response.content
    assert b"csv-imports" not in response.content
    assert b"mapping.toml" not in response.content


def test_missing_file_error_hides_the_server_path(admin_client, staging):
    data = {
        "mapping_file": SimpleUploadedFile("crm.toml", MAPPING),
        "csv_files": [SimpleUploadedFile("other.csv", GOOD)],
    }

    response = admin_client.post(reverse("csv_import:upload"), data)

    assert (
        b"No file in the uploaded files matches &#x27;accounts.csv&#x27;"
        in response.content
    )
    assert str(staging).encode() not in response.content
    assert b"csv-imports" not in response.content


def test_report_named_after_the_uploaded_mapping(admin_client):
    data = {
        "mapping_file": SimpleUploadedFile("crm.toml", MAPPING),
        "csv_files": [SimpleUploadedFile("accounts.csv", GOOD)],
    }

    response = admin_client.post(reverse("csv_import:upload"), data)

    assert response.context["report"].mapping == "crm"
