"""The CLI's error vocabulary, shared by every command and `slimtriton.cli.main` (which maps
exceptions to exit statuses in one place: `slimtriton.cli.exit_status`)."""
from __future__ import annotations


class UsageError(ValueError):
    """A bad flag value or combination: exit status 2 and one line naming the flag."""
