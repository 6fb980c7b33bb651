"""Projects over real HTTP: tokens stored as hashes, deletion leaves nothing, IDs per project."""

from __future__ import annotations

import numpy as np
import pytest

from linkage_unit.client import UnitClient, UnitError
from linkage_unit.embedded import EmbeddedUnit
from tests.linkage_unit.conftest import (
    Encoded,
    release_rows,
    run_to_end,
    setup_project,
    upload_all,
)


def test_party_tokens_are_stored_only_as_hashes(unit: EmbeddedUnit, encoded: Encoded) -> None:
    _, tokens = setup_project(unit, encoded)
    from sqlalchemy import select

    from linkage_unit.database import Party, make_engine, session_factory

    engine = make_engine(unit.settings.url())
    with session_factory(engine)() as session:
        stored = set(session.scalars(select(Party.token_hash)))
    engine.dispose()
    assert len(stored) == 3
    assert not stored & set(tokens.values())


def test_deleted_project_leaves_no_encodings(unit: EmbeddedUnit, encoded: Encoded) -> None:
    project, tokens = setup_project(unit, encoded)
    upload_all(unit, project, tokens, encoded)
    run_to_end(unit, project)
    with UnitClient(unit.url, unit.admin_token) as admin:
        admin.delete_project(project)
        with pytest.raises(UnitError) as exc:
            admin.project(project)
        assert exc.value.status == 404
        entries = admin.audit(project)
    assert entries[-1]["action"] == "project.deleted"
    assert not (unit.settings.data_dir / "projects" / project).exists()
    samples = [np.asarray(memoryview(p.plk.read_bytes())[-256:]).tobytes()
               for p in encoded.partners.values()]  # fmt: skip
    for path in unit.settings.data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(s in content for s in samples), path
    with UnitClient(unit.url, tokens["council"]) as council, pytest.raises(UnitError) as gone:
        council.uploads(project)
    assert gone.value.status == 401  # the party's token went with the project


def test_two_projects_ids_for_the_same_people_cannot_be_joined(
    unit: EmbeddedUnit, encoded: Encoded
) -> None:
    mappings = []
    for _ in range(2):
        project, tokens = setup_project(unit, encoded, threshold=0.8)
        upload_all(unit, project, tokens, encoded)
        assert run_to_end(unit, project)["status"] == "done"
        with UnitClient(unit.url, tokens["benefits_dept"]) as party:
            mappings.append([i for _, _, i in release_rows(party.mapping(project))])
    first, second = mappings
    # The same rows are grouped the same way (same data, same rules) …
    assert len(set(first)) == len(set(second))
    # … under unrelated pseudonyms: not one ID in common.
    assert not set(first) & set(second)
