"""The Lua scripts agree with Python on the one field of a stream entry."""

from __future__ import annotations

import re
from importlib import resources

from supervisor.broker import keys, scripts

NAMES = sorted(entry.name[:-4] for entry in resources.files("supervisor.broker.scripts")
               .iterdir() if entry.name.endswith(".lua"))


def test_every_stream_entry_a_script_writes_or_reads_has_the_one_message_field() -> None:
    assert "enqueue" in NAMES and "settle" in NAMES
    for name in NAMES:
        source = scripts.source(name)
        written = re.findall(r"'XADD'.*?'\*', '(\w+)'", source)
        read = re.findall(r"fields\[f\] == '(\w+)'", source)
        assert set(written + read) <= {keys.MESSAGE_FIELD}, name
        if written or read:  # and its header says so, where a reader of the script looks
            header = "".join(line for line in source.splitlines() if line.startswith("--"))
            assert f"one field, '{keys.MESSAGE_FIELD}'" in header, name
