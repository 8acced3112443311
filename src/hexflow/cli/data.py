"""``hexflow data ...``: the Typer app and its commands, in the order ``--help`` lists them.

The commands live by concept — transfers (``data_transfers``), the catalog
(``data_catalog``), RO-Crate export (``data_export``), usage and lifecycle rules
(``data_lifecycle``) — and share ``data_common`` (options, services, exit codes; see
docs/data.md). ``hexflow transfers`` is registered on the main app.
"""

from __future__ import annotations

import typer

from hexflow.cli.data_catalog import add, lineage, ls, search, show, verify
from hexflow.cli.data_export import export, export_run
from hexflow.cli.data_lifecycle import lifecycle, usage
from hexflow.cli.data_transfers import cp

data_app = typer.Typer(
    name="data",
    help="Storage tiers, verified transfers, the dataset catalog, lineage and RO-Crate export.",
    epilog="Locations are TIER:PATH (qss, pss, offplatform, archive; TIER@SITE:PATH for "
    "another site) or local paths.  Examples:  hexflow data cp ./run1 qss:run1  ·  "
    "hexflow data add climate qss:run1 --meta title='Run 1'  ·  hexflow data search "
    "temperature  ·  hexflow data lineage climate@1 --downstream  ·  hexflow data export "
    "climate@1 --ro-crate out/  ·  hexflow data export-run RUN --ro-crate run-crate/  ·  "
    "hexflow data lifecycle --dry-run  ·  hexflow transfers",
    no_args_is_help=True,
)

data_app.command("cp")(cp)
data_app.command("add")(add)
data_app.command("ls")(ls)
data_app.command("show")(show)
data_app.command("search")(search)
data_app.command("lineage")(lineage)
data_app.command("export")(export)
data_app.command("export-run")(export_run)
data_app.command("usage")(usage)
data_app.command("lifecycle")(lifecycle)
data_app.command("verify")(verify)
