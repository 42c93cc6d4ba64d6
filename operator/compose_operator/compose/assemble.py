"""One Compose tree from the main file and the project files it names (`include`, `extends`).

Follows compose-go's loader (`loader/loader.go`, `include.go`, `extends.go`) in its order:
each file is read and interpolated on its own; its `include`s are loaded as projects of their
own (their folder is their project folder; `env_file` or their folder's `.env` adds
interpolation values the parent does not set) and their resources are imported, merged under
the including file's own definition of the same name; then each service's `extends` is applied
(a service of the same file, or of `file:`), the base merged under the extending service.
Relative paths in a file (bind sources, `env_file`, `configs/secrets.*.file`, `extends.file`,
`include`) are rewritten relative to the project folder, so `./x` in `sub/compose.yaml` is
`sub/x` everywhere after. Files come only from `ProjectFiles`; a missing one is named.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from compose_operator.compose import interpolate, merge, values, yamlload
from compose_operator.compose.envfile import EnvFileError, parse
from compose_operator.compose.projectfiles import ProjectFiles, normalize, not_carried
from compose_operator.compose.report import Report, child, item

RESOURCES = ("services", "volumes", "networks", "secrets", "configs", "models")
INCLUDE_KEYS = ("path", "project_directory", "env_file")
MAX_FILES_DEEP = 16
"""Include and extends chains longer than this are refused (cycles are refused at once)."""

Tagged = tuple[tuple[str, ...], ...]


class Assembler:
    def __init__(self, files: ProjectFiles, environment: Mapping[str, str], report: Report) -> None:
        self.files = files
        self.environment = environment
        self.report = report
        self._extended: dict[str, tuple[dict[str, Any], Tagged, Report] | None] = {}

    def main(self, text: str) -> dict[str, Any] | None:
        document, tagged = yamlload.read_tagged(text, self.report)
        if self.report.problems:
            return None
        if not isinstance(document, dict):
            self.report.problem(
                "", f"a Compose file is a mapping with `services:`, got {values.show(document)}"
            )
            return None
        return self._process(document, tagged, "", self.environment, self.report, ())

    def _process(
        self,
        document: dict[str, Any],
        tagged: Tagged,
        base: str,
        environment: Mapping[str, str],
        report: Report,
        chain: tuple[str, ...],
    ) -> dict[str, Any]:
        """Interpolate, rebase, include, extend: one file's tree, ready to merge."""
        document = interpolate.interpolate_tree(document, "", environment, report)
        document = _rebased(document, base)
        if "include" in document:
            self._include(document, tagged, environment, report, chain)
        self._extends(document, tagged, report, chain)
        return document

    def _read(self, path: str, where: str, report: Report) -> tuple[str, Report] | None:
        """A project file's text and a report for it; None after naming the problem."""
        found = self.files.get(path)
        if found is None:
            report.problem(where, not_carried(path))
            return None
        if not isinstance(found.content, str):
            report.problem(where, f"{path} is not a text file")
            return None
        return found.content, Report(file=path)

    # --- include ------------------------------------------------------------------------

    def _include(
        self,
        document: dict[str, Any],
        tagged: Tagged,
        environment: Mapping[str, str],
        report: Report,
        chain: tuple[str, ...],
    ) -> None:
        entries = document.pop("include")
        if entries is None:
            return
        if not isinstance(entries, list):
            values.expected(report, "include", "a list of files", entries)
            return
        for index, entry in enumerate(entries):
            where = item("include", index)
            spec = {"path": entry} if isinstance(entry, str) else entry
            if not isinstance(spec, dict):
                values.expected(report, where, "a path or a mapping with path", entry)
                continue
            values.unknown_keys(spec, where, INCLUDE_KEYS, report)
            paths = spec.get("path")
            paths = [paths] if isinstance(paths, str) else paths
            if not paths or not all(isinstance(p, str) and p for p in paths):
                values.expected(report, child(where, "path"), "a path or a list of paths", paths)
                continue
            imported = self._load_included(spec, paths, where, environment, report, chain)
            if imported is not None:
                self._import(imported, document, tagged, report, where)

    def _load_included(
        self,
        spec: dict[str, Any],
        paths: list[str],
        where: str,
        environment: Mapping[str, str],
        report: Report,
        chain: tuple[str, ...],
    ) -> dict[str, Any] | None:
        main = paths[0]
        if main in chain:
            report.problem(where, "include cycle: " + " -> ".join([*chain, main]))
            return None
        if len(chain) >= MAX_FILES_DEEP:
            report.problem(where, f"includes nest deeper than {MAX_FILES_DEEP} files")
            return None
        folder = spec.get("project_directory")
        base = folder if isinstance(folder, str) else posixpath.dirname(main)
        base = "" if base == "." else base
        own_environment = self._include_environment(spec, base, where, environment, report)
        merged: dict[str, Any] | None = None
        for path in paths:
            read = self._read(path, where, report)
            if read is None:
                return None
            text, sub_report = read
            document, tagged = yamlload.read_tagged(text, sub_report)
            if not isinstance(document, dict):
                if not sub_report.problems:
                    sub_report.problem("", "an included file is a mapping with `services:`")
                report.adopt(sub_report)
                return None
            document = self._process(
                document, tagged, base, own_environment, sub_report, (*chain, path)
            )
            report.adopt(sub_report)
            merged = document if merged is None else self._override(merged, document, tagged)
        return merged

    def _override(
        self, base: dict[str, Any], document: dict[str, Any], tagged: Tagged
    ) -> dict[str, Any]:
        """A further file of one include entry over the first (as `-f a -f b`)."""
        try:
            merged: dict[str, Any] = merge.merge(merge.reset(base, tagged), document)
        except merge.MergeError as error:
            self.report.problem("include", str(error))
            return base
        return merged

    def _include_environment(
        self,
        spec: dict[str, Any],
        base: str,
        where: str,
        environment: Mapping[str, str],
        report: Report,
    ) -> Mapping[str, str]:
        """The parent's values, plus the include's env files (or its folder's `.env`) for
        names the parent does not set."""
        env_files = spec.get("env_file")
        names = [env_files] if isinstance(env_files, str) else env_files
        if names is None:
            default = posixpath.join(base, ".env") if base else ".env"
            names = [default] if self.files.get(default) is not None else []
        if not isinstance(names, list):
            values.expected(report, child(where, "env_file"), "a path or a list", env_files)
            return environment
        found: dict[str, str] = {}
        for name in names:
            if name == "/dev/null" or not isinstance(name, str):
                continue
            read = self._read(name, child(where, "env_file"), report)
            if read is None:
                continue
            try:
                found.update(parse(read[0], {**found, **environment}))
            except EnvFileError as error:
                report.problem(child(where, "env_file"), f"{name}: {error}")
        return {**found, **environment}

    def _import(
        self,
        imported: dict[str, Any],
        document: dict[str, Any],
        tagged: Tagged,
        report: Report,
        where: str,
    ) -> None:
        for key in RESOURCES:
            source = imported.get(key)
            if not isinstance(source, dict):
                continue
            target = document.get(key)
            if not isinstance(target, dict):
                target = {}
            for name, value in source.items():
                if name not in target:
                    target[name] = value
                    continue
                base = merge.reset({key: {name: value}}, tagged)[key].get(name)
                try:
                    target[name] = merge.merge(base, target[name], (key, name))
                except merge.MergeError as error:
                    report.problem(child(key, name), f"{error} (imported by {where})")
            document[key] = target

    # --- extends ------------------------------------------------------------------------

    def _extends(
        self, document: dict[str, Any], tagged: Tagged, report: Report, chain: tuple[str, ...]
    ) -> None:
        services = document.get("services")
        if not isinstance(services, dict):
            return
        file = chain[-1] if chain else ""
        for name in list(services):
            extended = self._extend(name, services, file, tagged, report, ())
            if extended is not None:
                services[name] = extended

    def _extend(
        self,
        name: str,
        services: dict[str, Any],
        file: str,
        tagged: Tagged,
        report: Report,
        seen: tuple[tuple[str, str], ...],
    ) -> Any:
        service = services.get(name)
        if not isinstance(service, dict) or "extends" not in service:
            return service
        where = child(child("services", name), "extends")
        spec = service["extends"]
        spec = {"service": spec} if isinstance(spec, str) else spec
        if not isinstance(spec, dict) or not isinstance(spec.get("service"), str):
            values.expected(report, where, "a service name or {service, file}", service["extends"])
            return None
        values.unknown_keys(spec, where, ("service", "file"), report)
        reference, path = spec["service"], spec.get("file")
        bases, base_file, base_tagged, base_report = services, file, tagged, report
        if path is not None:
            loaded = self._extends_file(path, where, report)
            if loaded is None:
                return None
            bases, base_tagged, base_report = loaded
            base_file = path
        if reference not in bases:
            within = f" in {base_file}" if base_file else ""
            report.problem(
                where, f'cannot extend service "{name}": service "{reference}" not found{within}'
            )
            return None
        if (base_file, reference) in seen or len(seen) >= MAX_FILES_DEEP:
            cycle = " -> ".join(f"{f or 'the main file'}:{s}" for f, s in seen)
            report.problem(where, f"extends cycle: {cycle} -> {reference}")
            return None
        base = self._extend(
            reference, bases, base_file, base_tagged, base_report, (*seen, (base_file, reference))
        )
        if base is None:
            return None
        if base_report is not report:
            report.adopt(
                base_report,
                rename=(child("services", reference), child("services", name)),
            )
        source = merge.reset({"services": {name: base}}, tagged)["services"][name]
        try:
            merged = merge.merge(source, service, ("services", name))
        except merge.MergeError as error:
            report.problem(where, str(error))
            return None
        merged.pop("extends", None)
        if bases is services:
            services[name] = merged
        return merged

    def _extends_file(
        self, path: Any, where: str, report: Report
    ) -> tuple[dict[str, Any], Tagged, Report] | None:
        """The services of a file `extends` names, read once; its problems go to `report`."""
        if not isinstance(path, str) or not path:
            values.expected(report, child(where, "file"), "a path", path)
            return None
        if path not in self._extended:
            self._extended[path] = self._load_extends_file(path, where, report)
        return self._extended[path]

    def _load_extends_file(
        self, path: str, where: str, report: Report
    ) -> tuple[dict[str, Any], Tagged, Report] | None:
        read = self._read(path, child(where, "file"), report)
        if read is None:
            return None
        text, sub_report = read
        document, tagged = yamlload.read_tagged(text, sub_report)
        services = document.get("services") if isinstance(document, dict) else None
        if not isinstance(services, dict):
            if not sub_report.problems:
                sub_report.problem("", "no services section to extend")
            report.adopt(sub_report)
            return None
        base = posixpath.dirname(path)
        document = interpolate.interpolate_tree(document, "", self.environment, sub_report)
        document = _rebased(document, base)
        rebased = document.get("services")
        assert isinstance(rebased, dict)
        for problem in sub_report.problems:
            report.add(problem)
        sub_report.problems, sub_report.found = [], 0
        return rebased, tagged, sub_report


# --- paths relative to the project --------------------------------------------------------


def _rebased(document: dict[str, Any], base: str) -> dict[str, Any]:
    """Relative paths of a file in folder `base` made relative to the project folder."""
    if not base:
        return document

    def path(value: Any) -> Any:
        return normalize(base, value) if isinstance(value, str) and value else value

    def path_list(value: Any) -> Any:
        if isinstance(value, list):
            return [
                {**entry, "path": path(entry.get("path"))}
                if isinstance(entry, dict)
                else path(entry)
                for entry in value
            ]
        return path(value)

    services = document.get("services")
    for service in services.values() if isinstance(services, dict) else ():
        if not isinstance(service, dict):
            continue
        for key in ("env_file", "label_file"):
            if key in service:
                service[key] = path_list(service[key])
        if isinstance(service.get("volumes"), list):
            service["volumes"] = [_rebased_volume(v, base) for v in service["volumes"]]
        extends = service.get("extends")
        if isinstance(extends, dict) and "file" in extends:
            extends["file"] = path(extends["file"])
    for key in ("configs", "secrets"):
        entries = document.get(key)
        for entry in entries.values() if isinstance(entries, dict) else ():
            if isinstance(entry, dict) and "file" in entry:
                entry["file"] = path(entry["file"])
    includes = document.get("include")
    if isinstance(includes, list):
        rebased: list[Any] = []
        for entry in includes:
            if isinstance(entry, dict):
                entry = dict(entry)
                for key in ("path", "env_file"):
                    if key in entry:
                        entry[key] = path_list(entry[key])
                if "project_directory" in entry:
                    entry["project_directory"] = path(entry["project_directory"])
                rebased.append(entry)
            else:
                rebased.append(path(entry))
        document["include"] = rebased
    return document


def _rebased_volume(volume: Any, base: str) -> Any:
    if isinstance(volume, str):
        source, colon, rest = volume.partition(":")
        return f"./{normalize(base, source)}:{rest}" if colon and source[:1] == "." else volume
    if isinstance(volume, dict) and volume.get("type") == "bind":
        written = volume.get("source")
        if isinstance(written, str) and written:
            return {**volume, "source": normalize(base, written)}
    return volume
