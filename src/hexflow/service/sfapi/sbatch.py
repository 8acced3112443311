"""``#SBATCH`` directives of a batch script, read into what hexflow needs to run it.

Pure: text in, ``JobRequest`` out. Like sbatch, only the comment block at the top is read
(directives after the first command are ignored). Options outside the supported subset are
refused with a message that lists it, except a few harmless ones that are accepted and
ignored (``IGNORED``).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from hexflow.errors import SpecError
from hexflow.model import QoS
from hexflow.model.resources import parse_memory

# NERSC QoS names -> hexflow classes.
QOS_NAMES = {
    "regular": QoS.REGULAR,
    "shared": QoS.REGULAR,
    "debug": QoS.INTERACTIVE,
    "interactive": QoS.INTERACTIVE,
    "premium": QoS.URGENT,
    "urgent": QoS.URGENT,
    "realtime": QoS.REALTIME,
    "preempt": QoS.PREEMPT,
    "overrun": QoS.PREEMPT,
}

_SHORT = {
    "N": "nodes",
    "t": "time",
    "q": "qos",
    "G": "gpus",
    "o": "output",
    "e": "error",
    "J": "job-name",
    "c": "cpus-per-task",
    "n": "ntasks",
    "A": "account",
    "D": "chdir",
    "C": "constraint",
    "L": "licenses",
    "p": "partition",
    "S": "core-spec",
}
SUPPORTED = (
    "nodes", "time", "qos", "gpus", "gpus-per-node", "gpus-per-task", "gres", "output",
    "error", "job-name", "cpus-per-task", "ntasks", "ntasks-per-node", "mem", "account",
    "chdir",
)  # fmt: skip
IGNORED = (
    "constraint", "licenses", "partition", "mail-type", "mail-user", "exclusive",
    "reservation", "comment", "requeue", "no-requeue", "open-mode", "core-spec", "signal",
    "image", "module", "export", "get-user-env", "hint", "time-min", "begin",
)  # fmt: skip
_FLAGS = frozenset({"exclusive", "requeue", "no-requeue", "get-user-env"})


@dataclass(frozen=True)
class JobRequest:
    name: str = "batch"
    nodes: int = 1
    cpus: float = 1.0  # ntasks x cpus-per-task
    gpus: int = 0
    memory: int = 0  # bytes per node
    walltime: float | None = None  # seconds
    qos: QoS = QoS.REGULAR
    qos_name: str = "regular"
    output: str = "slurm-%j.out"
    error: str | None = None  # None: with the output
    account: str | None = None
    chdir: str | None = None
    directives: dict[str, str] = field(default_factory=dict)


def parse_script(text: str) -> JobRequest:
    options = _directives(text)
    return _request(options)


def _directives(text: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if number == 1 and line.startswith("#!"):
            continue
        if not line or (line.startswith("#") and not line.startswith("#SBATCH")):
            continue
        if not line.startswith("#SBATCH"):
            break  # sbatch reads directives up to the first command
        try:
            words = shlex.split(line[len("#SBATCH") :], comments=True)
        except ValueError as exc:
            raise _bad(number, f"cannot read the line: {exc}") from None
        i = 0
        while i < len(words):
            name, value, used = _option(words, i, number)
            options[name] = value
            i += used
    return options


def _option(words: list[str], i: int, line: int) -> tuple[str, str, int]:
    word = words[i]
    if word.startswith("--"):
        name, eq, value = word[2:].partition("=")
        if eq:
            return _known(name, line), value, 1
        name = _known(name, line)
        if name in _FLAGS:
            return name, "", 1
        if i + 1 >= len(words):
            raise _bad(line, f"--{name} needs a value")
        return name, words[i + 1], 2
    if word.startswith("-") and len(word) >= 2:
        letter = word[1]
        short = _SHORT.get(letter)
        if short is None:
            raise _bad(line, f"unknown option -{letter}")
        name = short
        value = word[2:].lstrip("=")
        if value:
            return name, value, 1
        if i + 1 >= len(words):
            raise _bad(line, f"-{letter} needs a value")
        return name, words[i + 1], 2
    raise _bad(line, f"unexpected word {word!r}")


def _known(name: str, line: int) -> str:
    if name in SUPPORTED or name in IGNORED:
        return name
    raise _bad(
        line,
        f"unsupported option --{name}",
        hint=f"hexflow reads {', '.join('--' + s for s in SUPPORTED)}; and ignores "
        f"{', '.join('--' + s for s in IGNORED)}",
    )


def _bad(line: int, message: str, hint: str | None = None) -> SpecError:
    return SpecError(
        f"sbatch: error: line {line}: {message}",
        hint=hint or "see docs/sfapi.md for the #SBATCH options hexflow reads",
        line=line,
    )


def _int(options: dict[str, str], key: str, default: int) -> int:
    value = options.get(key)
    if value is None:
        return default
    first = value.split("-", 1)[0]  # --nodes=2-4: the minimum
    if not first.isdigit() or int(first) < (1 if key != "gpus" else 0):
        raise SpecError(f"sbatch: error: --{key}: expected a whole number, got {value!r}")
    return int(first)


def _gres_gpus(value: str) -> int:
    for item in value.split(","):
        parts = item.split(":")
        if parts[0] == "gpu":
            count = parts[-1] if len(parts) > 1 else "1"
            if not count.isdigit():
                raise SpecError(f"sbatch: error: --gres: cannot read {item!r}")
            return int(count)
    return 0


def slurm_time(value: str) -> float:
    """Seconds from Slurm's forms: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS."""
    text = value.strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not m or text in ("0",):
        raise SpecError(
            f"sbatch: error: --time: cannot read {value!r}",
            hint="write minutes (30), MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS",
        )
    days, a, b, c = m.groups()
    nums = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:
        h, mi, s = (nums + [0, 0])[:3]
        seconds = int(days) * 86400 + h * 3600 + mi * 60 + s
    elif len(nums) == 1:
        seconds = nums[0] * 60
    elif len(nums) == 2:
        seconds = nums[0] * 60 + nums[1]
    else:
        seconds = nums[0] * 3600 + nums[1] * 60 + nums[2]
    if seconds <= 0:
        raise SpecError(f"sbatch: error: --time must be positive, got {value!r}")
    return float(seconds)


def _request(options: dict[str, str]) -> JobRequest:
    nodes = _int(options, "nodes", 1)
    ntasks = _int(options, "ntasks", 0) or nodes * _int(options, "ntasks-per-node", 1)
    cpus = float(ntasks * _int(options, "cpus-per-task", 1))
    gpus = 0
    if "gpus" in options:
        gpus = _int(options, "gpus", 0)
    elif "gpus-per-node" in options:
        gpus = nodes * _int(options, "gpus-per-node", 0)
    elif "gpus-per-task" in options:
        gpus = ntasks * _int(options, "gpus-per-task", 0)
    elif "gres" in options:
        gpus = _gres_gpus(options["gres"])
    memory = 0
    if "mem" in options:
        raw = options["mem"].strip()
        memory = parse_memory(raw + "M" if raw.isdigit() else raw, "mem")  # Slurm: MB
    qos_name = options.get("qos", "regular").lower()
    if qos_name not in QOS_NAMES:
        raise SpecError(
            f"sbatch: error: invalid qos specification {qos_name!r}",
            hint=f"QoS names here: {', '.join(QOS_NAMES)}",
        )
    return JobRequest(
        name=options.get("job-name") or "batch",
        nodes=nodes,
        cpus=cpus,
        gpus=gpus,
        memory=memory,
        walltime=slurm_time(options["time"]) if "time" in options else None,
        qos=QOS_NAMES[qos_name],
        qos_name=qos_name,
        output=options.get("output") or "slurm-%j.out",
        error=options.get("error"),
        account=options.get("account"),
        chdir=options.get("chdir"),
        directives=options,
    )


def expand_pattern(pattern: str, *, jobid: str, name: str, user: str) -> str:
    """Slurm's filename patterns: %j job id, %x job name, %u user, %% a percent sign."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "%" and i + 1 < len(pattern):
            code = pattern[i + 1]
            repl = {"j": jobid, "x": name, "u": user, "%": "%", "A": jobid, "a": "0"}.get(code)
            if repl is not None:
                out.append(repl)
                i += 2
                continue
        out.append(ch)
        i += 1
    return "".join(out)
