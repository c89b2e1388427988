"""``python -m receipt_compaction_tools.aws.moto_server [options]``: moto's server for the
local pipeline's load tests, with the emulator costs of ``moto_fixes`` removed."""

from __future__ import annotations

from moto.server import main

from receipt_compaction_tools.aws import moto_fixes

if __name__ == "__main__":
    moto_fixes.apply()
    main()
