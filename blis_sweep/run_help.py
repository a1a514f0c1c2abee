"""`blis-sweep run --help`: the reference's flags with their defaults."""
import dataclasses

from blis_sweep.run_args import RunFlags


def run_help_text() -> str:
    lines = ["Usage: blis-sweep run [flags]", "",
             "Runs one configuration exactly as the reference simulator's `run` does and prints the same output.",
             "", "Flags (reference names and defaults):"]
    for field in dataclasses.fields(RunFlags):
        if field.name == "explicit":
            continue
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        lines.append(f"  --{field.name.replace('_', '-'):<30} default: {default!r}")
    return "\n".join(lines)
