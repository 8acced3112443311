"""What the SFAPI facade's compute, command and task routes do, in hexflow's terms.

* A batch job is a hexflow run of one shell task (``job``) that runs the script with bash,
  its output and error sent to the ``#SBATCH --output/--error`` files (``%j`` is the job id,
  which is the run id). The SFAPI "task" that submitted it is the same id, completed at once.
* A command (``utilities/command``) is a run of one shell task (``command``) through
  ``/bin/sh -c``; its SFAPI task is ``new`` until the run ends, then ``completed`` with
  stdout, stderr and the exit code (or ``cancelled``).
* Job states are Slurm's words for the run's state (``JOB_STATE``); the squeue view holds
  unfinished jobs only, the sacct view every job.

Operational failures (a bad directive, a script not found) are answers with
``status: ERROR``, as sfapi_client expects; only authentication, scope and role failures
are HTTP errors. Runs are created here without Idempotency-Keys (the client sends none).
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hexflow.errors import Forbidden, HexflowError, NotFound, ServiceError, SpecError
from hexflow.flow.runtime import log_paths, new_run_id
from hexflow.model import Resources, RunRecord, RunState, TaskKind, TaskRecord, TaskSpec
from hexflow.model.access import Scope
from hexflow.service.audit import Audit
from hexflow.service.auth import Principal
from hexflow.service.manager import RunManager
from hexflow.service.sfapi.files import Area, FileProblem, project_root, read_file
from hexflow.service.sfapi.sbatch import JobRequest, expand_pattern, parse_script
from hexflow.service.sites import SiteRegistry
from hexflow.service.tasks import read_tail
from hexflow.store.service_db import ServiceDb

JOB_TASK, COMMAND_TASK = "job", "command"
LIST_LIMIT = 500  # jobs one listing returns at most
OUTPUT_LIMIT = 4 << 20  # bytes of a command's stdout/stderr in its task result
_WRAPPER = 'exec >>"$1" 2>>"$2"; shift 2; exec /bin/bash "$@"'
_ST = {"PENDING": "PD", "RUNNING": "R", "COMPLETED": "CD", "FAILED": "F", "CANCELLED": "CA"}
_ST["TIMEOUT"] = "TO"


def ok(**fields: Any) -> dict[str, Any]:
    return {"status": "OK", "error": None, **fields}


def error(message: str, **fields: Any) -> dict[str, Any]:
    return {"status": "ERROR", "error": message, **fields}


class SfapiJobs:
    def __init__(
        self,
        *,
        home: Path,
        db: ServiceDb,
        manager: RunManager,
        audit: Audit,
        sites: SiteRegistry,
        machines: Mapping[str, str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._home = home
        self._db = db
        self._manager = manager
        self._audit = audit
        self._sites = sites
        self.machines = dict(machines)
        self._now = clock

    # ------------------------------------------------------------------ helpers
    def site_of(self, machine: str) -> str:
        site = self.machines.get(machine)
        if site is None:
            raise NotFound(
                f"no machine {machine!r}",
                hint=f"machines here: {', '.join(self.machines)}",
                machine=machine,
            )
        return site

    def area(self, who: Principal, needed: Scope) -> Area:
        """The project directories ``who`` may use with ``needed``; home: its one project."""
        who.require_scope(needed)
        projects = sorted(who.projects(needed))
        roots = tuple(project_root(self._home, p) for p in projects)
        home = who.bound_project if who.bound_project in projects else None
        if home is None and len(projects) == 1:
            home = projects[0]
        return Area(roots, project_root(self._home, home) if home else None)

    def _project(self, who: Principal, account: str | None) -> str:
        """The project a job or command goes to: ``#SBATCH -A``, else the only one."""
        if account is not None:
            if account not in who.projects(Scope.SUBMIT):
                raise SpecError(
                    f"sbatch: error: Invalid account or account/partition combination "
                    f"specified ({account!r})",
                    hint="name a project you may submit to",
                )
            return account
        reachable = sorted(who.projects(Scope.SUBMIT))
        if who.bound_project in reachable:
            return who.bound_project
        if len(reachable) == 1:
            return reachable[0]
        if not reachable:
            raise Forbidden(
                f"user {who.name!r} may submit to no project",
                hint="ask a project administrator for the member role",
            )
        raise SpecError(
            f"sbatch: error: several projects ({', '.join(reachable)}); say which one",
            hint="add `#SBATCH -A PROJECT` to the script, or use a token bound to one project",
        )

    def _run(self, who: Principal, run_id: str, needed: Scope) -> RunRecord | None:
        run = self._db.runs.get_run(run_id, who.projects(Scope.READ))
        if run is not None and run.project not in who.projects(needed):
            raise Forbidden(
                f"you may not {needed.value} in project {run.project!r}",
                hint="ask a project administrator for another role",
            )
        return run

    # ------------------------------------------------------------------ submit
    def submit(
        self,
        who: Principal,
        machine: str,
        *,
        job: str,
        is_path: bool,
        args: list[str],
        source: str | None,
    ) -> dict[str, Any]:
        with self._audit.action(who.name, "sfapi.job.submit", source=source) as note:
            who.require_scope(Scope.SUBMIT)
            self.site_of(machine)
            try:
                run, tasks = self._submit(who, job=job, is_path=is_path, args=args)
            except (SpecError, FileProblem) as exc:
                note.detail = _message(exc)
                return error(_message(exc), task_id="")
            note.project, note.target = run.project, run.id
            # the run and its "ok" audit entry: one transaction (group-committed)
            done = self._audit.row(who.name, "sfapi.job.submit", note, source=source)
            self._manager.persist(run, tasks, audit=(done,)).result()
            note.recorded = True
            return ok(task_id=run.id)

    def _submit(
        self, who: Principal, *, job: str, is_path: bool, args: list[str]
    ) -> tuple[RunRecord, list[TaskRecord]]:
        """The job's run, planned (``RunManager.plan``): the caller persists it."""
        if args and not is_path:
            raise SpecError("sbatch: error: args are taken only with a script path (isPath)")
        if is_path:
            read_area = self.area(who, Scope.READ)
            script_path, _ = read_area.resolve(job)
            try:
                text = read_file(read_area, job).decode(errors="replace")
            except FileProblem:
                raise FileProblem(f"sbatch: error: Unable to open file {job}") from None
        elif not job.strip():
            raise SpecError("sbatch: error: the job script is empty")
        else:
            text = job
        request = parse_script(text)
        project = self._project(who, request.account)
        root = project_root(self._home, project)
        run_id = new_run_id()
        workdir = root / run_id
        workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not is_path:
            script_path = workdir / "job.sh"
            script_path.write_text(text)
        cwd = script_path.parent if is_path else root
        if request.chdir:
            chdir, _ = self.area(who, Scope.SUBMIT).resolve(
                request.chdir if request.chdir.startswith("/") else str(cwd / request.chdir)
            )
            cwd = chdir
        spec = _job_spec(
            request, script_path, args, cwd=cwd, jobid=run_id, user=who.name, project=project
        )
        return self._manager.plan(
            request.name, [spec], run_id=run_id, project=project, user=who.name,
            labels={"sfapi": "job"},
        )  # fmt: skip

    def command(
        self, who: Principal, machine: str, *, executable: str, source: str | None
    ) -> dict[str, Any]:
        with self._audit.action(who.name, "sfapi.command", source=source) as note:
            who.require_scope(Scope.SUBMIT)
            self.site_of(machine)
            if not executable.strip():
                note.detail = "empty command"
                return error("no command given", task_id="")
            try:
                project = self._project(who, None)
            except SpecError as exc:
                return error(exc.message, task_id="")
            # SFAPI's command is a command line for a shell, by definition.
            spec = TaskSpec(  # noqa: S604
                id=COMMAND_TASK,
                name=COMMAND_TASK,
                kind=TaskKind.SHELL,
                command=(executable,),
                shell=True,
                cwd=str(project_root(self._home, project)),
            )
            run = self._manager.create(
                "command", [spec], run_id=new_run_id(), project=project, user=who.name,
                labels={"sfapi": "command"},
            )  # fmt: skip
            note.project, note.target = project, run.id
            return ok(task_id=run.id)

    # ------------------------------------------------------------------ jobs
    def jobs(
        self, who: Principal, machine: str, *, sacct: bool, kwargs: list[str]
    ) -> dict[str, Any]:
        who.require_scope(Scope.READ)
        site = self.site_of(machine)
        filters = _filters(kwargs)
        projects = who.projects(Scope.READ)
        if "jobid" in filters:
            ids = [j for j in filters["jobid"].split(",") if j]
            found = [self._db.runs.get_run(j, projects) for j in ids[:LIST_LIMIT]]
            runs = [r for r in found if r is not None]
        else:
            runs = self._db.runs.list_runs(projects, limit=LIST_LIMIT)
            user = filters.get("user", who.name)
            runs = [r for r in runs if r.config.get("submitted_by") == user]
        if filters.get("partition") not in (None, site):
            runs = []
        rows = []
        for run in runs:
            if run.config.get("sfapi") == "command":
                continue
            if not sacct and run.state.terminal:
                continue
            view = self._job_view(run)
            rows.append(_sacct_row(view, site) if sacct else _squeue_row(view, site))
        return ok(output=rows)

    def job(self, who: Principal, machine: str, jobid: str, *, sacct: bool) -> dict[str, Any]:
        return self.jobs(who, machine, sacct=sacct, kwargs=[f"jobid={jobid}"])

    def cancel_job(
        self, who: Principal, machine: str, jobid: str, *, source: str | None
    ) -> dict[str, Any]:
        with self._audit.action(who.name, "sfapi.job.cancel", target=jobid, source=source) as note:
            self.site_of(machine)
            who.require_scope(Scope.SUBMIT)
            run = self._run(who, jobid, Scope.SUBMIT)
            if run is None or run.config.get("sfapi") == "command":
                note.detail = "no such job"
                return error(
                    f"scancel: error: Kill job error on job id {jobid}: Invalid job id specified",
                    output="",
                )
            note.project = run.project
            if not run.state.terminal:
                note.detail = str(self._manager.cancel(run.id).get("mode"))
            return ok(output="")

    def _job_view(self, run: RunRecord) -> dict[str, Any]:
        task = self._db.runs.get_task(run.id, JOB_TASK)
        return {"run": run, "task": task, "state": job_state(run, task)}

    # ------------------------------------------------------------------ tasks
    def task(self, who: Principal, task_id: str) -> dict[str, Any]:
        who.require_scope(Scope.READ)
        run = self._run(who, task_id, Scope.READ)
        if run is None:
            raise NotFound(
                f"no task {task_id!r}",
                hint="task ids are the task_id of a job submission or a command",
                task=task_id,
            )
        return self._task_view(run)

    def tasks(self, who: Principal) -> dict[str, Any]:
        who.require_scope(Scope.READ)
        runs = self._db.runs.list_runs(who.projects(Scope.READ), limit=100)
        mine = [r for r in runs if r.config.get("sfapi") and r.config.get("submitted_by")]
        return {"tasks": [self._task_view(r) for r in mine if r.config["submitted_by"] == who.name]}

    def cancel_task(self, who: Principal, task_id: str, *, source: str | None) -> dict[str, Any]:
        with self._audit.action(
            who.name, "sfapi.task.cancel", target=task_id, source=source
        ) as note:
            who.require_scope(Scope.SUBMIT)
            run = self._run(who, task_id, Scope.SUBMIT)
            if run is None:
                raise NotFound(f"no task {task_id!r}", task=task_id)
            note.project = run.project
            if not run.state.terminal:
                note.detail = str(self._manager.cancel(run.id).get("mode"))
            return ok(output="")

    def _task_view(self, run: RunRecord) -> dict[str, Any]:
        if run.config.get("sfapi") != "command":
            result = {"status": "ok", "jobid": run.id, "error": None}
            return {"id": run.id, "status": "completed", "result": json.dumps(result)}
        if not run.state.terminal:
            return {"id": run.id, "status": "new", "result": None}
        if run.state is RunState.CANCELLED:
            return {"id": run.id, "status": "cancelled", "result": None}
        task = self._db.runs.get_task(run.id, COMMAND_TASK)
        return {
            "id": run.id,
            "status": "completed",
            "result": json.dumps(_command_result(run, task)),
        }


def _message(exc: HexflowError | FileProblem) -> str:
    return exc.message if isinstance(exc, HexflowError) else str(exc)


def _filters(kwargs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in kwargs:
        key, sep, value = item.partition("=")
        if not sep or key not in ("jobid", "user", "partition"):
            raise ServiceError(
                f"unsupported job filter {item!r}",
                hint="kwargs takes jobid=ID[,ID...], user=NAME or partition=NAME",
                status=422,
                field="kwargs",
            )
        out[key] = value
    return out


def _job_spec(
    request: JobRequest,
    script: Path,
    args: list[str],
    *,
    cwd: Path,
    jobid: str,
    user: str,
    project: str,
) -> TaskSpec:
    def place(pattern: str) -> str:
        name = expand_pattern(pattern, jobid=jobid, name=request.name, user=user)
        return str(cwd / name)

    out = place(request.output)
    err = place(request.error) if request.error else out
    return TaskSpec(
        id=JOB_TASK,
        name=request.name,
        kind=TaskKind.SHELL,
        command=("/bin/bash", "-c", _WRAPPER, "hexflow-job", out, err, str(script), *args),
        resources=Resources(
            cpus=request.cpus,
            memory=request.memory,
            gpus=request.gpus,
            nodes=request.nodes,
            walltime=request.walltime,
        ),
        qos=request.qos,
        cwd=str(cwd),
        env={
            "SLURM_JOB_ID": jobid,
            "SLURM_JOBID": jobid,
            "SLURM_JOB_NAME": request.name,
            "SLURM_SUBMIT_DIR": str(cwd),
            "SLURM_JOB_NUM_NODES": str(request.nodes),
            "SLURM_NNODES": str(request.nodes),
            "SLURM_JOB_QOS": request.qos_name,
            "SLURM_JOB_USER": user,
            "SLURM_JOB_ACCOUNT": project,
        },
        tags={"sfapi": "job", "script": shlex.quote(str(script))},
    )


def job_state(run: RunRecord, task: TaskRecord | None) -> str:
    """Slurm's name for the state of a job's run."""
    if run.state is RunState.SUCCEEDED:
        return "COMPLETED"
    if run.state is RunState.CANCELLED:
        return "CANCELLED"
    if run.state is RunState.FAILED:
        if task is not None and task.reason in ("walltime", "timeout"):
            return "TIMEOUT"
        return "CANCELLED" if task is not None and task.reason == "cancelled" else "FAILED"
    if task is None:
        return "RUNNING" if run.state is RunState.RUNNING else "PENDING"
    return "RUNNING" if task.state.in_flight else "PENDING"


def _clock(at: float | None) -> str:
    if at is None:
        return "Unknown"
    return dt.datetime.fromtimestamp(at).strftime("%Y-%m-%dT%H:%M:%S")


def _elapsed(run: RunRecord, now: float) -> str:
    if run.started_at is None:
        return "0:00"
    seconds = int((run.ended_at or now) - run.started_at)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _limit(task: TaskRecord | None) -> str:
    walltime = task.spec.resources.walltime if task else None
    if walltime is None:
        return "UNLIMITED"
    minutes = int(walltime // 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{int(walltime % 60):02d}"


def _squeue_row(view: dict[str, Any], site: str) -> dict[str, str]:
    run, task, state = view["run"], view["task"], view["state"]
    res = task.spec.resources if task else Resources()
    return {
        "jobid": run.id,
        "state": state,
        "st": _ST.get(state, "PD"),
        "name": run.name,
        "user": str(run.config.get("submitted_by") or ""),
        "account": run.project or "",
        "partition": site,
        "qos": task.spec.qos.value if task else "regular",
        "nodes": str(res.nodes),
        "cpus": str(int(res.cpus) if float(res.cpus).is_integer() else res.cpus),
        "time_limit": _limit(task),
        "time": _elapsed(run, time.time()),
        "submit_time": _clock(run.created_at),
        "start_time": _clock(run.started_at),
        "work_dir": (task.spec.cwd or run.workdir) if task else run.workdir,
        "reason": "None" if state == "RUNNING" else "Priority",
    }


def _sacct_row(view: dict[str, Any], site: str) -> dict[str, str]:
    run, task, state = view["run"], view["task"], view["state"]
    res = task.spec.resources if task else Resources()
    code = task.exit_code if task is not None and task.exit_code is not None else 0
    return {
        "jobid": run.id,
        "jobidraw": run.id,
        "jobname": run.name,
        "state": state,
        "exitcode": f"{max(code, 0)}:{-code if code < 0 else 0}",
        "user": str(run.config.get("submitted_by") or ""),
        "account": run.project or "",
        "partition": site,
        "qos": task.spec.qos.value if task else "regular",
        "submit": _clock(run.created_at),
        "start": _clock(run.started_at),
        "end": _clock(run.ended_at),
        "elapsed": _elapsed(run, time.time()),
        "nnodes": str(res.nodes),
        "ncpus": str(int(res.cpus) if float(res.cpus).is_integer() else res.cpus),
        "timelimit": _limit(task),
        "workdir": (task.spec.cwd or run.workdir) if task else run.workdir,
    }


def _command_result(run: RunRecord, task: TaskRecord | None) -> dict[str, Any]:
    if task is None:
        return {"status": "error", "output": "", "error": "the command was lost", "exit_code": 1}
    out_path, err_path = log_paths(run, task)
    stdout = read_tail(out_path, OUTPUT_LIMIT).text
    stderr = read_tail(err_path, OUTPUT_LIMIT).text
    code = task.exit_code
    if code is None:  # it never ran to an exit (launch failure, time limit)
        code = 1
        stderr = stderr or f"{task.error or task.reason or 'failed'}\n"
    return {
        "status": "ok" if code == 0 else "error",
        "output": stdout,
        "error": stderr,
        "exit_code": code,
    }
