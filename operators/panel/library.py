"""The library modules the panel's callbacks call, imported when first used.

Deferred on purpose: the App imports every plugin when it starts, and these modules bring in
the engine (torch, transformers); a panel that is never opened must not pay for them.
"""

from __future__ import annotations

#: The plugin, whose operators the panel opens (``ctx.prompt``).
PLUGIN = "@fiftyone-ntt/no-time-to-train"


def ps():
    """:mod:`fiftyone_ntt.fiftyone.app.panel_state`: rows, notices and ``Effect``."""
    from fiftyone_ntt.fiftyone.app import panel_state

    return panel_state


def pa():
    """:mod:`fiftyone_ntt.fiftyone.app.panel_actions`: references, banks, preview, judging."""
    from fiftyone_ntt.fiftyone.app import panel_actions

    return panel_actions


def ra():
    """:mod:`fiftyone_ntt.fiftyone.app.run_actions`: the runs table's buttons."""
    from fiftyone_ntt.fiftyone.app import run_actions

    return run_actions
