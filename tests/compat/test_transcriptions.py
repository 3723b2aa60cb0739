"""/transcriptions in the original shape: every field comes back, over the same transcript
/api/v1 serves."""

from __future__ import annotations

from typing import Any

import httpx

from tests.compat.envelopes import OWNER, STRANGER, data, failure
from tests.compat.samples import assert_same


def transcription() -> dict[str, Any]:
    """A transcription as the original backend stored it (every field present)."""
    return {
        "segments": [
            {
                "id": "3f2c1e9a-5b7d-4c1e-9f0a-1b2c3d4e5f60",
                "start_time": 0.0,
                "end_time": 2.5,
                "text": "Um welcome back",
                "words": [
                    {
                        "text": "Um",
                        "start": 0.0,
                        "end": 0.4,
                        "confidence": 0.0,
                        "is_filler": True,
                        "speaker_id": "S1",
                    },
                    {
                        "text": "welcome",
                        "start": 0.5,
                        "end": 1.2,
                        "confidence": 0.98,
                        "is_filler": False,
                        "speaker_id": "S1",
                    },
                    {
                        "text": "back",
                        "start": 1.3,
                        "end": 2.5,
                        "confidence": 1.0,
                        "is_filler": False,
                        "speaker_id": None,
                    },
                ],
                "speaker_id": "S1",
                "confidence": 0.91,
                "is_edited": True,
                "edited_text": "Welcome back",
            },
            {
                "id": "seg-2",
                "start_time": 3.0,
                "end_time": 3.0,
                "text": "",
                "words": [],
                "speaker_id": None,
                "confidence": 0.0,
                "is_edited": False,
                "edited_text": None,
            },
        ],
        "language": "en",
        "model_used": "whisper-base",
        "processing_time": 0.0,
        "confidence_score": 0.87,
        "is_complete": True,
        "is_edited": False,
        "speaker_count": 2,
        "speakers": {"S1": "Host", "S2": ""},
    }


async def test_a_transcription_reads_back_field_by_field(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """Every segment, word and header field comes back as it was put, fillers included."""
    sent = transcription()
    put = data(await client.put(f"/transcriptions/{project_id}", json=sent, headers=OWNER))
    got = data(await client.get(f"/transcriptions/{project_id}", headers=OWNER))
    for document in (put, got):
        assert (document["_id"], document["project_id"], document["version"]) == (
            project_id,
            project_id,
            1,
        )
        assert_same({key: document[key] for key in sent}, sent)
    header = await client.get(f"/api/v1/projects/{project_id}/transcript", headers=OWNER)
    assert header.json()["wordCount"] == 3
    assert header.json()["metadata"]["model"] == "whisper-base"


async def test_a_partial_put_keeps_what_it_does_not_send(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """Marking the transcription edited keeps its segments, as the original update did."""
    await client.put(f"/transcriptions/{project_id}", json=transcription(), headers=OWNER)
    changed = data(
        await client.put(
            f"/transcriptions/{project_id}",
            json={"is_edited": True, "speakers": {"S1": "Anna"}},
            headers=OWNER,
        )
    )
    expected = {**transcription(), "is_edited": True, "speakers": {"S1": "Anna"}}
    assert changed["version"] == 2
    assert_same({key: changed[key] for key in expected}, expected)
    got = data(await client.get(f"/transcriptions/{project_id}", headers=OWNER))
    assert_same({key: got[key] for key in expected}, expected)


async def test_segments_sent_without_ids_get_ids(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """A first transcription with only segments takes the original defaults for the rest."""
    segment = {"start_time": 1.0, "end_time": 2.0, "text": "Hi", "confidence": 0.5}
    body = data(
        await client.put(
            f"/transcriptions/{project_id}", json={"segments": [segment]}, headers=OWNER
        )
    )
    assert body["segments"][0]["id"]
    assert (body["language"], body["speaker_count"], body["is_complete"]) == ("en", 1, False)
    assert body["segments"][0]["words"] == []


async def test_a_deleted_or_missing_transcription_is_not_found(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """Delete removes it; reading or deleting it again is a 404, as the original answered."""
    failure(await client.get(f"/transcriptions/{project_id}", headers=OWNER), 404)
    await client.put(f"/transcriptions/{project_id}", json=transcription(), headers=OWNER)
    failure(await client.get(f"/transcriptions/{project_id}", headers=STRANGER), 404)
    failure(await client.delete(f"/transcriptions/{project_id}", headers=STRANGER), 404)
    assert data(await client.delete(f"/transcriptions/{project_id}", headers=OWNER)) is None
    failure(await client.get(f"/transcriptions/{project_id}", headers=OWNER), 404)
    failure(await client.delete(f"/transcriptions/{project_id}", headers=OWNER), 404)


async def test_an_invalid_transcription_names_the_original_field(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """A segment ending before it starts is a 422 naming the web app's field."""
    sent = transcription()
    sent["segments"][1]["end_time"] = 2.9
    response = await client.put(f"/transcriptions/{project_id}", json=sent, headers=OWNER)
    body = failure(response, 422)
    assert body["details"][0]["loc"][:3] == ["body", "segments", "1"]
