"""The stack's settings: every key the program reads is declared in Pulumi.yaml with the
default the program itself applies, and documented in docs/deploy.md; destroyProtection
reads as the stack sets it, and the setting it replaced is refused by name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pulumi
import pytest
import yaml
from test_pulumi_program import RecordingMocks

from chromadb_compaction.pipeline import PipelineConfig

REPO = Path(__file__).resolve().parents[3]
PROJECT = "receipt-compaction"
PROGRAM = REPO / "infra" / "chromadb_compaction"
DEPLOY_DOC = REPO / "docs" / "deploy.md"
# Read only to refuse them with the key that replaced them.
REPLACED = {"tableDeletionProtection"}


def _declared() -> dict[str, object]:
    """Pulumi.yaml's keys of this project, with their defaults."""
    project = yaml.safe_load((REPO / "infra" / "Pulumi.yaml").read_text())
    return {
        key.removeprefix(f"{PROJECT}:"): spec["default"]
        for key, spec in project["config"].items()
        if key.startswith(f"{PROJECT}:")
    }


def _read_by_program() -> set[str]:
    calls = re.compile(r"config\.get(?:_bool|_int)?\(\s*\"(\w+)\"")
    return {key for path in PROGRAM.glob("*.py") for key in calls.findall(path.read_text())}


def _as_config(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.fixture
def stack_config() -> Iterator[dict[str, str]]:
    """The stack's config (key → value, this project's namespace), read by from_stack."""
    pulumi.runtime.set_mocks(RecordingMocks(), project=PROJECT, stack="config", preview=False)
    values: dict[str, str] = {}
    yield values
    pulumi.runtime.set_all_config({})


def _from_stack(values: dict[str, str]) -> PipelineConfig:
    pulumi.runtime.set_all_config({f"{PROJECT}:{k}": v for k, v in values.items()})
    return PipelineConfig.from_stack()


def test_every_key_the_program_reads_is_declared_and_nothing_else() -> None:
    assert _read_by_program() == set(_declared()) | REPLACED


def test_the_declared_defaults_are_the_programs_own(stack_config: dict[str, str]) -> None:
    # `pulumi up` passes Pulumi.yaml's defaults; tests and a bare program apply their own.
    unset = _from_stack({})
    explicit = _from_stack({key: _as_config(value) for key, value in _declared().items()})
    assert explicit == unset


def test_every_key_is_documented() -> None:
    text = DEPLOY_DOC.read_text()
    missing = [key for key in _declared() if f"`{key}`" not in text]
    assert missing == []


def test_destroy_protection_is_on_unless_the_stack_turns_it_off(
    stack_config: dict[str, str],
) -> None:
    assert _from_stack({}).destroy_protection is True
    assert _from_stack({"destroyProtection": "true"}).destroy_protection is True
    assert _from_stack({"destroyProtection": "false"}).destroy_protection is False


def test_the_replaced_table_setting_is_refused_by_name(stack_config: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="replaced by destroyProtection"):
        _from_stack({"tableDeletionProtection": "false"})


def test_the_compactor_reservation_reads_as_set(stack_config: dict[str, str]) -> None:
    assert _from_stack({"compactorReservedConcurrency": "-1"}).compactor_reserved_concurrency == -1
    with pytest.raises(ValueError, match="a reservation of 0 throttles every invocation"):
        _from_stack({"compactorReservedConcurrency": "0"})
