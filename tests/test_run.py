"""Pipeline.run(): dataset files, rejects, report and manifest, reproducibly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finetune_web import ConfigError, Document, JsonSource, Pipeline, validate_file
from finetune_web.testing import ListSource


def _tutorial(products: Path) -> Pipeline:
    # The tutorial mapping of a scraped product, as a user writes it (under 10 lines).
    return (
        Pipeline.from_source(JsonSource(products), seed=7)
        .template(
            system="You are a copywriter for an online store.",
            user="Write a crisp product description for {title|name} by {brand}.\n"
            "Features: {features}",
            assistant="{description}",
        )
        .step("exact_dedup")
        .split(validation=0.2)
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_demo_products_become_a_valid_dataset(demo_products: Path, tmp_path: Path) -> None:
    """The bundled products give train/validation files the validator accepts, and every
    input record is either written or rejected with a reason."""
    report = _tutorial(demo_products).run(tmp_path, models=("gpt-4o-mini", "gpt-4.1-mini"))
    source, template, dedup, _split, validate = report.steps
    assert (source.records_in, source.rejected, source.reasons) == (22, 2, {"scrape_error": 2})
    assert template.reasons == {"missing_field": 1}
    assert dedup.reasons == {"duplicate": 1}
    assert validate.reasons == {"special_token": 1}
    written = sum(
        o.records for o in report.outputs if o.name in ("train.jsonl", "validation.jsonl")
    )
    assert written + report.rejected == 22
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == report.rejected == 5
    assert all(r["location"]["origin"].endswith("products.json") for r in rejects)
    assert all(r["message"] and r["reason"] for r in rejects)
    check = validate_file(tmp_path / "train.jsonl", "gpt-4o-mini", min_examples=1)
    assert check.errors == ()
    assert [e["model"] for e in report.estimates] == ["gpt-4o-mini", "gpt-4.1-mini"]


def test_same_inputs_give_byte_identical_outputs(demo_products: Path, tmp_path: Path) -> None:
    """Two runs of the same pipeline with the same seed write identical bytes."""
    first, second = tmp_path / "a", tmp_path / "b"
    _tutorial(demo_products).run(first)
    _tutorial(demo_products).run(second)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert {"train.jsonl", "rejects.jsonl", "manifest.json"} <= set(names)
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_another_seed_gives_another_split(demo_products: Path, tmp_path: Path) -> None:
    """The seed is part of the result: a different seed moves some examples across."""
    _tutorial(demo_products).run(tmp_path / "a")
    _tutorial(demo_products).with_seed(8).split(validation=0.5, seed=99).run(tmp_path / "b")
    assert _sha(tmp_path / "a" / "train.jsonl") != _sha(tmp_path / "b" / "train.jsonl")


def test_manifest_records_inputs_outputs_and_pipeline(demo_products: Path, tmp_path: Path) -> None:
    """The manifest holds the input's and outputs' sha256, the description, versions, seed."""
    pipeline = _tutorial(demo_products)
    report = pipeline.run(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["inputs"] == [
        {
            "path": str(demo_products),
            "bytes": demo_products.stat().st_size,
            "sha256": _sha(demo_products),
        }
    ]
    outputs = {item["name"]: item["sha256"] for item in manifest["outputs"]}
    assert outputs["train.jsonl"] == _sha(tmp_path / "train.jsonl")
    assert outputs["rejects.jsonl"] == _sha(tmp_path / "rejects.jsonl")
    assert manifest["pipeline"] == pipeline.describe()
    assert manifest["pipeline_sha256"] == report.pipeline_sha256 == pipeline.fingerprint()
    assert manifest["seed"] == 7
    assert set(manifest["libraries"]) >= {"finetune-web", "tiktoken", "attrs"}


def test_report_file_matches_the_returned_report(demo_products: Path, tmp_path: Path) -> None:
    """report.json is the returned report's JSON form."""
    report = _tutorial(demo_products).run(tmp_path)
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(
        json.dumps(report.to_json())
    )


def test_refuses_to_overwrite_a_previous_run_when_asked(
    demo_products: Path, tmp_path: Path
) -> None:
    """overwrite=False refuses a directory holding a run's files, naming them."""
    _tutorial(demo_products).run(tmp_path)
    with pytest.raises(ConfigError, match=r"train\.jsonl"):
        _tutorial(demo_products).run(tmp_path, overwrite=False)


def test_documents_left_at_the_end_are_written_as_documents(tmp_path: Path) -> None:
    """A pipeline with no template writes its documents to documents.jsonl, none lost."""
    docs = [Document(id=f"d{i}", text=f"text {i}") for i in range(3)]
    report = Pipeline.from_source(ListSource(docs)).run(tmp_path)
    lines = (tmp_path / "documents.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["d0", "d1", "d2"]
    assert report.output("documents.jsonl").records == 3
    assert not (tmp_path / "train.jsonl").exists()


def test_unknown_model_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """An unknown model name fails fast with suggestions, writing nothing."""
    with pytest.raises(KeyError, match="gpt-4o-mini"):
        Pipeline.from_source(ListSource([])).run(tmp_path / "out", models=("gpt-4o-mimi",))
    assert not (tmp_path / "out").exists()


_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "title": st.sampled_from(["Kettle", "Mug", "Lamp", ""]),
        "description": st.sampled_from(["Boils fast.", "Holds tea.", "Bright.", "<|endoftext|>"]),
    },
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(_FIELDS, max_size=25), validation=st.floats(0, 0.9))
def test_every_step_accounts_for_every_record(
    rows: list[dict[str, str]], validation: float, tmp_path: Path
) -> None:
    """For every step of a run, records in = records out + rejected, and the written
    files plus the rejects file hold every source record exactly once."""
    docs = [Document(id=f"r{i}", data=row) for i, row in enumerate(rows)]
    pipeline = (
        Pipeline.from_source(ListSource(docs))
        .template(user="Describe {title}", assistant="{description}")
        .step("exact_dedup")
        .split(validation=validation)
    )
    report = pipeline.run(tmp_path, models=("gpt-4o-mini",))
    for step in report.steps:
        assert step.records_in == step.records_out + step.rejected, step
        assert sum(step.reasons.values()) == step.rejected
    for earlier, later in zip(report.steps, report.steps[1:], strict=False):
        assert later.records_in == earlier.records_out
    written = sum(o.records for o in report.outputs if o.name != "rejects.jsonl")
    assert written + report.rejected == len(rows)


def test_worker_processes_give_identical_outputs(demo_products: Path, tmp_path: Path) -> None:
    """Tokenizing in a worker process changes nothing in the files or the report figures."""
    pipeline = _tutorial(demo_products)
    local = pipeline.run(tmp_path / "local", models=("gpt-4o-mini", "gpt-3.5-turbo-0125"))
    pooled = pipeline.run(
        tmp_path / "pooled", models=("gpt-4o-mini", "gpt-3.5-turbo-0125"), token_workers=1
    )
    for name in ("train.jsonl", "rejects.jsonl", "report.json", "manifest.json"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "pooled" / name).read_bytes()
    assert local.estimates == pooled.estimates
