"""The HTTP service's request, response and error models (pydantic), shown in its OpenAPI schema.

Every error the service answers has one shape, FastAPI's list form: ``{"detail": [{"loc", "msg", "type"}]}``.
"""

from typing import Annotated, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from clipsearch.settings import Settings

# --- the one error shape ------------------------------------------------------------------------------------


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(
        description='The field at fault, e.g. ["query", "k"]; [] when it is not one field.'
    )
    msg: str = Field(description="What is wrong, for people.")
    type: str = Field(
        description="What is wrong, for programs: e.g. index_not_loaded, unauthorized, int_parsing."
    )


class ErrorBody(BaseModel):
    """Every error the service answers has this shape."""

    detail: list[ErrorItem]


def error_body(msg: str, type_: str, loc: list | None = None) -> dict:
    """The one error shape of the service (FastAPI's list form)."""
    return {"detail": [{"loc": loc or [], "msg": msg, "type": type_}]}


def error_response(status: int, msg: str, type_: str, loc: list | None = None, headers: dict | None = None):
    return JSONResponse(error_body(msg, type_, loc), status_code=status, headers=headers)


# --- request and response models ----------------------------------------------------------------------------


class Filters(BaseModel):
    """Only clips whose field equals one of the given values (exact match); filters apply before the top k."""

    model_config = ConfigDict(extra="forbid")

    source: list[str] = Field(default_factory=list, description="Sources (channels, publishers) to keep.")
    video_id: list[str] = Field(default_factory=list, description="Video ids to keep.")


class Highlight(BaseModel):
    model_config = ConfigDict(extra="allow")

    text: str = Field(description="The answer sentence closest to the question.")
    char_start: int
    char_end: int


class Result(BaseModel):
    """One clip that answers the question."""

    model_config = ConfigDict(extra="allow")

    id: str
    question: str = Field(description="The question the clip answers (may be empty).")
    answer: str = Field(description="What is said in the clip.")
    source: str = Field(description="Channel or publisher (may be empty).")
    start: float = Field(description="Seconds into the video.")
    end: float = Field(description="Seconds into the video.")
    duration: float = Field(description="end - start, seconds.")
    start_label: str = Field(description="start as MM:SS, or H:MM:SS from an hour on.", examples=["01:41"])
    end_label: str = Field(description="end as MM:SS, or H:MM:SS from an hour on.", examples=["1:02:05"])
    url: str | None = Field(None, description="The video's URL; present when known.")
    video_id: str | None = Field(None, description="Present when known.")
    video_title: str | None = Field(None, description="Present when known.")
    topic: str | None = Field(None, description="Present when known.")
    link: str | None = Field(
        description="Opens the video at the clip: YouTube ?t=<start>s, else a media fragment #t=start,end; "
        "null without a url."
    )
    score: float = Field(description="The number the ranking used.")
    confidence: float | None = Field(
        None,
        description="How likely the clip answers the question (0 to 1), when "
        "the index is calibrated; present when the core provides it.",
    )
    matched: Literal["question", "answer"] = Field(description="Which side of the clip matched best.")
    scores: dict[str, float | None] = Field(description="The components of score; null where absent.")
    highlight: Highlight | None
    overlapping: list[str] = Field(
        default_factory=list,
        description="Ids of clips of the same video overlapping this one, folded into it.",
    )


class AnswerBody(BaseModel):
    """The answer to a question: the clips that answer it, best first (as `clipsearch ask --json` prints)."""

    model_config = ConfigDict(extra="allow")

    query: str = Field(description="The question, trimmed.")
    answered: bool = Field(
        description="false when no clip answers it confidently (or none matches the filters)."
    )
    best_score: float | None = Field(
        None, description="The top result's score; present when the core provides it."
    )
    threshold: float | None = Field(
        None,
        description="The confidence a top result needs for answered: true; present when the core gives it.",
    )
    results: list[Result]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    index: str = Field(description="The index directory.")
    version: str = Field(description="The version being served.")
    built_at: str = Field(description="When that version was built (UTC, ISO 8601).")
    model: str
    clips: int
    query_encoder: str = Field(
        description="What encodes questions: `onnx fp32`, `onnx int8`, or `torch` (also when an ONNX export was "
        "refused)."
    )
    verified: bool = Field(
        description="Whether every byte of the version above was hashed against its manifest (a version swapped in "
        "while serving always is; the first one is checked in the background after the start)."
    )
    last_reload_error: str | None = Field(
        description="Why the version DIR/current names was refused (the one above keeps serving); else null."
    )


class ReloadBody(BaseModel):
    version: str | None = Field(description="The version serving now.")
    reloaded: bool = Field(description="Whether this call swapped a new version in.")


def request_models(settings: Settings) -> tuple[type[BaseModel], type[BaseModel]]:
    """The models of GET /search and POST /ask, whose bounds come from ``settings``."""
    Question = Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=settings.max_query_chars),
        Field(description=f"The question, 1 to {settings.max_query_chars} characters after trimming."),
    ]
    Count = Annotated[int, Field(ge=1, le=settings.max_k, description="How many clips at most.")]
    Collapse = Annotated[bool, Field(
        description="Clips of one video whose time ranges overlap do not crowd the results: the best one stands "
                    "and lists the others in `overlapping`. false lists each clip on its own."
    )]
    GroupBy = Annotated[Literal["video"] | None, Field(
        description="`video`: one result per video, its best clip."
    )]

    class SearchParams(BaseModel):
        model_config = ConfigDict(extra="forbid")

        q: Question
        k: Count = settings.default_k
        source: list[str] = Field(
            default_factory=list, description="Only clips from this source (repeatable)."
        )
        video_id: list[str] = Field(
            default_factory=list, description="Only clips of this video (repeatable)."
        )
        collapse: Collapse = True
        group_by: GroupBy = None

    class AskRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [{"question": "my chain squeaks", "k": 3, "filters": {"source": []}}]
            },
        )

        question: Question
        k: Count = settings.default_k
        filters: Filters = Field(default_factory=Filters)
        collapse: Collapse = True
        group_by: GroupBy = None

    return SearchParams, AskRequest
