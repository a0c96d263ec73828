"""The sample generator writes the same importable files on every run."""

from io import StringIO

import pytest
from django.core.management import call_command

from courses.models import Course, Enrollment
from customers.models import Account, Contact
from integrations.services import ImportDataError, generate_sample, import_all


def test_sample_files_are_deterministic(tmp_path):
    first = generate_sample(tmp_path / "one")
    second = generate_sample(tmp_path / "two")

    names = sorted(path.relative_to(first) for path in first.rglob("*.csv"))
    assert len(names) == 12
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


@pytest.mark.django_db
def test_sample_imports_and_reports_bad_rows(tmp_path):
    folder = generate_sample(tmp_path)

    ravenstack, oulad = import_all(folder)

    assert Account.objects.count() == 40
    assert Contact.objects.count() > 40
    assert Course.objects.count() == 2
    assert Enrollment.objects.count() > 200
    reasons = [issue.reason for issue in ravenstack.errors]
    assert any("duplicate usage_id" in reason for reason in reasons)
    assert any("usage_duration_secs is 0" in reason for reason in reasons)
    assert any("before submitted_at" in reason for reason in reasons)
    assert any("end_date 2024-04-01 is before" in reason for reason in reasons)
    assert len(ravenstack.warnings) == 1
    oulad_reasons = [issue.reason for issue in oulad.errors]
    assert "date_registration is blank" in oulad_reasons
    assert any("'Incomplete'" in reason for reason in oulad_reasons)


@pytest.mark.django_db
def test_import_data_command_on_sample(tmp_path):
    call_command("generate_sample", str(tmp_path), stdout=StringIO())
    out = StringIO()

    call_command("import_data", str(tmp_path), "--no-progress", stdout=out)

    summary = out.getvalue()
    assert "RavenStack import from" in summary
    assert "OULAD import from" in summary
    assert "ravenstack_feature_usage.csv:403: usage_duration_secs is 0" in summary


@pytest.mark.django_db
def test_import_all_checks_both_folders_first(tmp_path):
    folder = generate_sample(tmp_path)
    (folder / "oulad_2013" / "vle_2013.csv").unlink()

    with pytest.raises(ImportDataError, match=r"vle_2013\.csv not found"):
        import_all(folder)

    assert not Account.objects.exists()
