"""The account page's lifecycle forms: ticking a checklist item by hand or taking
such a tick back, and moving the account to another stage.

Both are POST forms on the account page. Each view checks on the server,
as the account page does (customers.roles), that the user may use the
account pages and may edit this account. CSMs therefore act on the
accounts they own, or on every account with customers.view_all_accounts.
CS managers may not edit accounts, so they get 403. Each view calls one
service, tick_item(), untick_item() or set_stage(), and returns to the
account page.
"""

import logging

from django.contrib import messages
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from customers.models import Account
from customers.roles import account_pages_required, may_edit_account
from lifecycle.checklists import tick_item, untick_item
from lifecycle.models import ChecklistItem, Stage
from lifecycle.services import set_stage

logger = logging.getLogger(__name__)

# Maximum length of the reason for a move by hand, in characters.
MAX_REASON_LENGTH = 2000


@require_POST
@account_pages_required
def tick_checklist_item(request: HttpRequest, pk: int, item_id: int) -> HttpResponse:
    """Tick an item of the account's checklist by hand, once."""
    account = _editable_account(request, pk)
    item = get_object_or_404(ChecklistItem, pk=item_id)

    tick = tick_item(account, item, by=_signed_in_user(request))

    if tick is None:
        messages.info(request, f'"{item.name}" was ticked already.')
    else:
        messages.success(request, f'Ticked "{item.name}".')
    return _back_to_stage_section(account)


@require_POST
@account_pages_required
def untick_checklist_item(request: HttpRequest, pk: int, item_id: int) -> HttpResponse:
    """Take back a tick by hand, with a required reason."""
    account = _editable_account(request, pk)
    item = get_object_or_404(ChecklistItem, pk=item_id)
    reason = request.POST.get("reason", "").strip()
    if len(reason) > MAX_REASON_LENGTH:
        return _invalid(request, account, _too_long(reason))

    try:
        untick = untick_item(account, item, by=_signed_in_user(request), reason=reason)
    except ValueError as error:
        return _invalid(request, account, f"{str(error)[:1].upper()}{str(error)[1:]}.")

    if untick is None:
        messages.info(request, f'"{item.name}" is not ticked.')
    else:
        messages.success(request, f'Unticked "{item.name}".')
    return _back_to_stage_section(account)


@require_POST
@account_pages_required
def move_stage(request: HttpRequest, pk: int) -> HttpResponse:
    """Move the account to the stage named by its slug, with a required reason."""
    account = _editable_account(request, pk)
    slug = request.POST.get("stage", "").strip()
    reason = request.POST.get("reason", "").strip()

    stage = Stage.objects.filter(slug=slug).first()
    if stage is None:
        return _invalid(
            request,
            account,
            f"Stage {slug!r} does not exist; pick a stage from the list.",
        )
    if not reason:
        return _invalid(
            request,
            account,
            "A reason is required to move an account by hand; state why the "
            "success criteria do not decide it.",
        )
    if len(reason) > MAX_REASON_LENGTH:
        return _invalid(request, account, _too_long(reason))

    change = set_stage(account, stage, by=_signed_in_user(request), reason=reason)

    if change is None:
        messages.info(request, f"{account.name} is already in {stage.name}.")
    else:
        messages.success(request, f"Moved {account.name} to {stage.name}.")
    return _back_to_stage_section(account)


def _too_long(reason: str) -> str:
    return (
        f"The reason has {len(reason)} characters, more than the maximum "
        f"of {MAX_REASON_LENGTH}; shorten it."
    )


def _editable_account(request: HttpRequest, pk: int) -> Account:
    account = get_object_or_404(Account, pk=pk)
    if not may_edit_account(request.user, account):
        raise PermissionDenied(
            "You may change only the accounts you own; CS managers change none."
        )
    return account


def _signed_in_user(request: HttpRequest) -> AbstractBaseUser:
    # account_pages_required has sent anonymous users to the sign-in page.
    if not isinstance(request.user, AbstractBaseUser):
        raise PermissionDenied("Sign in to change an account.")
    return request.user


def _back_to_stage_section(account: Account) -> HttpResponse:
    return HttpResponseRedirect(
        reverse("accounts:detail", args=[account.pk]) + "#stage"
    )


def _invalid(request: HttpRequest, account: Account, message: str) -> HttpResponse:
    logger.info(
        "Rejected a lifecycle change of account %s by user %s: %s",
        account.pk,
        request.user.pk,
        message,
    )
    return render(
        request,
        "accounts/invalid_action.html",
        {"account": account, "message": message},
        status=400,
    )
