"""``python -m hexflow.executors.pilot --channel DIR --name NAME --cpus N --walltime S``:
a pilot, as a provider starts it in an allocation (see ``agent``)."""

import sys

from hexflow.executors.pilot.agent import main

sys.exit(main())
