"""The admin page where staff upload CSV files, review a dry run and import.

The uploaded files and the mapping are staged in a folder under VAR_DIR
named by a random token. The session keeps the token between the dry run
and the confirmation, so the import runs on exactly the files the dry run
read. A user may import only into models on which they have both the add
and the change permission.
"""

import logging
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from integrations.csv_import import (
    CsvImportError,
    Mapping,
    load_mapping,
    run_import,
    shipped_mappings,
)

logger = logging.getLogger(__name__)

TEMPLATE = "admin/csv_import/upload.html"
SESSION_KEY = "csv_import_stage"
MAPPING_NAME = "mapping.toml"

# The name errors give the staging folder.
DATA_LABEL = "the uploaded files"

# The dry run and the import run inside the web request, at roughly 2,000
# rows/s (docs/csv-import.md), so larger files go through import_csv.
# NOTE: 10 MiB is an estimate of what finishes within a minute or two.
MAX_FILE_BYTES = 10 * 1024 * 1024

# Staged uploads that were never confirmed are removed after a day.
STALE_SECONDS = 24 * 60 * 60


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that accepts several files and cleans to a list."""

    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        items = data if isinstance(data, list | tuple) else [data]
        return [super(MultipleFileField, self).clean(item, initial) for item in items]


class UploadForm(forms.Form):
    mapping = forms.ChoiceField(
        required=False,
        help_text="A mapping that ships with Nudgepath (docs/csv-import.md).",
    )
    mapping_file = forms.FileField(
        required=False,
        help_text="Or a TOML mapping file of your own, used instead.",
    )
    csv_files = MultipleFileField(help_text="The CSV files that the mapping names.")
    skip_invalid = forms.BooleanField(
        required=False,
        label="Import the valid rows and report the others",
        help_text="Otherwise the mapping's on_error decides; by default one "
        "rejected row means nothing is imported.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "---------")]
        choices += [(path.stem, path.name) for path in shipped_mappings()]
        mapping_field = self.fields["mapping"]
        assert isinstance(mapping_field, forms.ChoiceField)
        mapping_field.choices = choices

    def clean_csv_files(self) -> list[UploadedFile]:
        files: list[UploadedFile] = self.cleaned_data["csv_files"]
        names = [Path(upload.name or "").name for upload in files]
        for name in names:
            if names.count(name) > 1:
                # Staged in one folder, the second would overwrite the first.
                raise forms.ValidationError(
                    f"{names.count(name)} uploaded files are named {name}; rename "
                    "them so that each file has its own name, or import them one "
                    "after the other"
                )
        for upload, name in zip(files, names, strict=True):
            if not name.lower().endswith(".csv") or name.startswith("."):
                raise forms.ValidationError(
                    f"{name!r} is not a .csv file; upload the CSV files the "
                    "mapping names"
                )
            if upload.size is not None and upload.size > MAX_FILE_BYTES:
                raise forms.ValidationError(
                    f"{name} is larger than {MAX_FILE_BYTES // 2**20} MiB; import "
                    "it with the import_csv command instead"
                )
        return files

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if bool(cleaned.get("mapping")) == bool(cleaned.get("mapping_file")):
            raise forms.ValidationError(
                "Choose a shipped mapping or upload a mapping file, not both"
            )
        return cleaned

    def mapping_name(self) -> str:
        """Return the name of the chosen mapping file, as errors show it."""
        upload = self.cleaned_data.get("mapping_file")
        if upload:
            return Path(upload.name or MAPPING_NAME).name
        return f"{self.cleaned_data['mapping']}.toml"


def csv_import_view(request: HttpRequest) -> HttpResponse:
    """Show the upload form, run the dry run, or import the staged files."""
    if request.method == "POST" and request.POST.get("action") == "import":
        return _import_staged(request)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        return _dry_run(request, form)
    return render(request, TEMPLATE, {"form": form, "title": "Import CSV files"})


def _dry_run(request: HttpRequest, form: UploadForm) -> HttpResponse:
    _remove_stale_stages()
    token = secrets.token_urlsafe(16)
    folder = _stage(token, form.cleaned_data)
    on_error = "skip" if form.cleaned_data["skip_invalid"] else None
    mapping_name = form.mapping_name()
    try:
        # Errors name the uploaded files, never the staging folder, whose
        # path contains the token.
        mapping = load_mapping(folder / MAPPING_NAME, mapping_name)
        _require_permissions(request, mapping)
        report = run_import(
            mapping, folder, dry_run=True, on_error=on_error, data_label=DATA_LABEL
        )
    except CsvImportError as error:
        logger.warning("CSV dry run by user %s failed: %s", request.user.pk, error)
        shutil.rmtree(folder, ignore_errors=True)
        form.add_error(None, str(error))
        return render(request, TEMPLATE, {"form": form, "title": "Import CSV files"})
    except PermissionDenied:
        shutil.rmtree(folder, ignore_errors=True)
        raise

    request.session[SESSION_KEY] = {
        "token": token,
        "on_error": on_error,
        "mapping_name": mapping_name,
    }
    return render(
        request,
        TEMPLATE,
        {"title": "Review the dry run", "report": report, "token": token},
    )


def _import_staged(request: HttpRequest) -> HttpResponse:
    stage = request.session.get(SESSION_KEY) or {}
    token = request.POST.get("token", "")
    folder = _staging_root() / token
    if not token or stage.get("token") != token or not folder.is_dir():
        return _upload_page(
            request,
            "This upload was already imported or has expired; upload the files again",
        )

    # The session entry goes first, so a later click finds nothing to import.
    # Two clicks at once may both run, and the keys make the second one
    # change nothing.
    del request.session[SESSION_KEY]
    try:
        mapping = load_mapping(folder / MAPPING_NAME, stage.get("mapping_name"))
        _require_permissions(request, mapping)
        report = run_import(
            mapping, folder, on_error=stage.get("on_error"), data_label=DATA_LABEL
        )
    except CsvImportError as error:
        logger.warning("CSV import by user %s failed: %s", request.user.pk, error)
        return _upload_page(request, str(error))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    logger.info(
        "User %s imported CSV files with mapping %s: %d rows read, %d rejected, %s",
        request.user.pk,
        mapping.name,
        report.rows_read,
        report.rejected_total,
        "committed" if report.committed else "rolled back",
    )
    return render(request, TEMPLATE, {"title": "Import finished", "report": report})


def _upload_page(request: HttpRequest, error: str) -> HttpResponse:
    context = {"form": UploadForm(), "title": "Import CSV files", "error": error}
    return render(request, TEMPLATE, context)


def _require_permissions(request: HttpRequest, mapping: Mapping) -> None:
    """Raise PermissionDenied unless the user may add and change every target."""
    for spec in mapping.targets:
        options = spec.target.model._meta
        for action in ("add", "change"):
            permission = f"{options.app_label}.{action}_{options.model_name}"
            if not request.user.has_perm(permission):
                raise PermissionDenied(
                    f"Importing {spec.target.label} rows needs the {permission} "
                    "permission"
                )


def _staging_root() -> Path:
    return Path(settings.VAR_DIR) / "csv-imports"


def _stage(token: str, cleaned: dict[str, Any]) -> Path:
    """Write the uploaded CSV files and the mapping into a new staging folder."""
    folder = _staging_root() / token
    folder.mkdir(parents=True)
    for upload in cleaned["csv_files"]:
        with (folder / Path(upload.name or "").name).open("wb") as target:
            for chunk in upload.chunks():
                target.write(chunk)
    mapping_path = folder / MAPPING_NAME
    if cleaned.get("mapping_file"):
        mapping_path.write_bytes(cleaned["mapping_file"].read())
    else:
        shipped = {path.stem: path for path in shipped_mappings()}
        shutil.copyfile(shipped[cleaned["mapping"]], mapping_path)
    return folder


def _remove_stale_stages() -> None:
    root = _staging_root()
    if not root.is_dir():
        return
    cutoff = time.time() - STALE_SECONDS
    for folder in root.iterdir():
        if folder.is_dir() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
