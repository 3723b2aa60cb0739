"""Configuration from the environment (and an optional `.env`), validated once at start-up.

Every setting is read from the environment variable named in its alias, so the names in
`.env.example`, the README and the error messages are the same strings. A bad value stops
start-up with one line per bad variable (see `describe_errors`); secrets are `SecretStr`
and only ever leave this module masked (`Settings.describe`) or as raw values handed to
the log redactor (`Settings.secret_values`).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from pymongo.errors import ConfigurationError, InvalidURI

Profile = Literal["local", "production"]
PasswordHashCost = Literal["standard", "minimal"]
LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

MASK = "****"
# MongoDB refuses these in database names; checking here turns a confusing driver error at the
# first query into a start-up error naming MONGODB_DATABASE.
_BAD_DATABASE_CHARS = re.compile(r'[/\\. "$\x00]')
# HS256 keys shorter than the hash output (256 bits) are guessable offline from one token.
_MIN_PRODUCTION_SECRET_LENGTH = 32
# Compatibility routes: the original web app's dev server, allowed by default in
# the local profile; an origin is a scheme, a host and an optional port.
LOCAL_CORS_ORIGINS = ("http://localhost:3000", "http://127.0.0.1:3000")
_CORS_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?")
# Accounts: the same floor as the verifier's (auth/token_verifier.py).
_MIN_RSA_KEY_BITS = 2048


def _env(name: str) -> Any:
    """Alias helper: the environment variable is the one public name of a setting."""
    return AliasChoices(name)


class Settings(BaseSettings):
    """Everything the service and the CLI can be told from outside."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
    )

    env: Profile = Field("local", validation_alias=_env("SNIPIX_ENV"))
    data_dir: Path = Field(Path(".snipix/data"), validation_alias=_env("SNIPIX_DATA_DIR"))

    mongodb_uri: SecretStr | None = Field(None, validation_alias=_env("MONGODB_URI"))
    mongodb_database: str | None = Field(None, validation_alias=_env("MONGODB_DATABASE"))
    mongodb_app_name: str = Field(
        "snipix", min_length=1, max_length=128, validation_alias=_env("MONGODB_APP_NAME")
    )
    mongodb_max_pool_size: int = Field(
        100, ge=1, le=10_000, validation_alias=_env("MONGODB_MAX_POOL_SIZE")
    )
    mongodb_min_pool_size: int = Field(
        0, ge=0, le=10_000, validation_alias=_env("MONGODB_MIN_POOL_SIZE")
    )
    mongodb_max_idle_time_ms: int = Field(
        300_000, ge=0, validation_alias=_env("MONGODB_MAX_IDLE_TIME_MS")
    )
    mongodb_server_selection_timeout_ms: int = Field(
        2_000, ge=100, le=300_000, validation_alias=_env("MONGODB_SERVER_SELECTION_TIMEOUT_MS")
    )
    mongodb_connect_timeout_ms: int = Field(
        10_000, ge=100, le=300_000, validation_alias=_env("MONGODB_CONNECT_TIMEOUT_MS")
    )
    mongodb_socket_timeout_ms: int = Field(
        30_000, ge=100, le=3_600_000, validation_alias=_env("MONGODB_SOCKET_TIMEOUT_MS")
    )
    mongodb_wait_queue_timeout_ms: int = Field(
        5_000, ge=100, le=300_000, validation_alias=_env("MONGODB_WAIT_QUEUE_TIMEOUT_MS")
    )
    mongodb_tls_ca_file: Path | None = Field(None, validation_alias=_env("MONGODB_TLS_CA_FILE"))

    redis_url: SecretStr | None = Field(None, validation_alias=_env("REDIS_URL"))
    redis_timeout_ms: int = Field(250, ge=10, le=60_000, validation_alias=_env("REDIS_TIMEOUT_MS"))

    # Cache-aside (Redis when REDIS_URL is set, else a bounded in-process cache).
    cache_enabled: bool = Field(True, validation_alias=_env("SNIPIX_CACHE_ENABLED"))
    cache_prefix: str = Field(
        "snipix", pattern=r"^[A-Za-z0-9_.-]{1,64}$", validation_alias=_env("SNIPIX_CACHE_PREFIX")
    )
    cache_ttl_s: float = Field(300, gt=0, le=86_400, validation_alias=_env("SNIPIX_CACHE_TTL_S"))
    cache_ttl_jitter: float = Field(
        0.1, ge=0, le=0.5, validation_alias=_env("SNIPIX_CACHE_TTL_JITTER")
    )
    cache_stale_s: float = Field(
        3_600, ge=0, le=7 * 86_400, validation_alias=_env("SNIPIX_CACHE_STALE_S")
    )
    cache_memory_max_bytes: int = Field(
        64 * 1024 * 1024, ge=0, le=2**40, validation_alias=_env("SNIPIX_CACHE_MEMORY_MAX_BYTES")
    )
    # With Redis: the in-process layer in front of it (kept exact by Redis client tracking).
    cache_local_max_bytes: int = Field(
        32 * 1024 * 1024, ge=0, le=2**40, validation_alias=_env("SNIPIX_CACHE_LOCAL_MAX_BYTES")
    )
    # The longest the in-process layer answers without a confirmed heartbeat on its tracking
    # connection: the bound on a stale answer from memory while Redis hangs.
    cache_local_max_lag_ms: int = Field(
        1_000, ge=20, le=60_000, validation_alias=_env("SNIPIX_CACHE_LOCAL_MAX_LAG_MS")
    )
    # Cached project and timeline GETs answered before routing (api/hot_reads.py);
    # off: every request takes the routes (same answers, more CPU per cached read).
    hot_reads: bool = Field(True, validation_alias=_env("SNIPIX_HOT_READS"))

    # Retry policy for database reads and cache calls (exponential backoff, full jitter).
    retry_attempts: int = Field(3, ge=1, le=10, validation_alias=_env("SNIPIX_RETRY_ATTEMPTS"))
    retry_base_ms: int = Field(50, ge=1, le=10_000, validation_alias=_env("SNIPIX_RETRY_BASE_MS"))
    retry_cap_ms: int = Field(1_000, ge=1, le=60_000, validation_alias=_env("SNIPIX_RETRY_CAP_MS"))

    jwt_secret: SecretStr | None = Field(None, validation_alias=_env("JWT_SECRET"))
    jwt_public_key: str | None = Field(None, validation_alias=_env("JWT_PUBLIC_KEY"))
    jwt_audience: str | None = Field(None, validation_alias=_env("JWT_AUDIENCE"))
    jwt_issuer: str | None = Field(None, validation_alias=_env("JWT_ISSUER"))
    dev_auth: bool | None = Field(None, validation_alias=_env("SNIPIX_DEV_AUTH"))

    # Accounts: the service signs its own access tokens with JWT_SECRET (HS256) or
    # JWT_PRIVATE_KEY (RS256, the private half of JWT_PUBLIC_KEY). With JWT_PUBLIC_KEY alone
    # it only verifies an identity provider's tokens and sign-in answers 501. Refresh tokens
    # are opaque, stored hashed, rotated on every use; `remember_me` picks the longer life.
    # Login failures are limited per account and per client address in a moving window.
    jwt_private_key: SecretStr | None = Field(None, validation_alias=_env("JWT_PRIVATE_KEY"))
    access_token_ttl_s: int = Field(
        900, ge=60, le=86_400, validation_alias=_env("SNIPIX_ACCESS_TOKEN_TTL_S")
    )
    refresh_token_ttl_s: int = Field(
        86_400, ge=300, le=400 * 86_400, validation_alias=_env("SNIPIX_REFRESH_TOKEN_TTL_S")
    )
    # argon2id cost of new password hashes. `minimal` (one pass over 8 MiB, one lane:
    # about a millisecond) exists for test suites, which sign up hundreds of accounts;
    # production refuses it. A hash made at one cost is upgraded at the next sign-in
    # under the other.
    password_hash_cost: PasswordHashCost = Field(
        "standard", validation_alias=_env("SNIPIX_PASSWORD_HASH_COST")
    )
    refresh_token_remember_ttl_s: int = Field(
        30 * 86_400,
        ge=300,
        le=400 * 86_400,
        validation_alias=_env("SNIPIX_REFRESH_TOKEN_REMEMBER_TTL_S"),
    )
    login_failures_per_account: int = Field(
        5, ge=1, le=10_000, validation_alias=_env("SNIPIX_LOGIN_FAILURES_PER_ACCOUNT")
    )
    login_failures_per_ip: int = Field(
        50, ge=1, le=100_000, validation_alias=_env("SNIPIX_LOGIN_FAILURES_PER_IP")
    )
    login_failure_window_s: int = Field(
        900, ge=1, le=86_400, validation_alias=_env("SNIPIX_LOGIN_FAILURE_WINDOW_S")
    )

    # Hardening. Rate limits: writes (POST/PUT/PATCH/DELETE) and searches
    # (`GET /api/v1/projects?q=`, transcript search) per user, or per client address for a
    # request without a valid identity, in a moving window; over it: 429 + Retry-After.
    # 0 = no limit. Counted in Redis when REDIS_URL is set (shared by every replica), in
    # process memory otherwise, and per process while Redis is unreachable. The defaults
    # are far above an editor's autosave (one write every 2 s) and the test suite.
    rate_limit_window_s: int = Field(
        60, ge=1, le=86_400, validation_alias=_env("SNIPIX_RATE_LIMIT_WINDOW_S")
    )
    rate_limit_writes: int = Field(
        1_200, ge=0, le=1_000_000, validation_alias=_env("SNIPIX_RATE_LIMIT_WRITES")
    )
    rate_limit_searches: int = Field(
        600, ge=0, le=1_000_000, validation_alias=_env("SNIPIX_RATE_LIMIT_SEARCHES")
    )
    # Largest request body in bytes, counted as it arrives (413, nothing read further), except
    # where a route allows more: timeline saves and imports (SNIPIX_TIMELINE_MAX_BYTES plus
    # 64 KiB) and media uploads (SNIPIX_MEDIA_MAX_BYTES plus the multipart framing).
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1_024, le=2**31, validation_alias=_env("SNIPIX_MAX_BODY_BYTES")
    )
    # Proxies trusted to say who the client is (X-Forwarded-For, X-Forwarded-Proto), as
    # uvicorn's --forwarded-allow-ips: comma-separated addresses or networks, `*` = any
    # (only when nothing but the proxy can reach the service). The client address is what
    # per-address rate limits and login limits count.
    forwarded_allow_ips: str = Field(
        "127.0.0.1,::1",
        min_length=1,
        pattern=r"^[0-9A-Fa-f:.,/* ]+$",
        validation_alias=_env("SNIPIX_FORWARDED_ALLOW_IPS"),
    )

    log_level: LogLevel = Field("INFO", validation_alias=_env("LOG_LEVEL"))
    log_format: LogFormat = Field("auto", validation_alias=_env("LOG_FORMAT"))
    slow_query_ms: int = Field(100, ge=0, le=600_000, validation_alias=_env("SLOW_QUERY_MS"))

    audit_retention_days: int = Field(
        365, ge=1, le=36_500, validation_alias=_env("AUDIT_RETENTION_DAYS")
    )
    timeline_max_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1_024,
        le=15 * 1024 * 1024,
        validation_alias=_env("SNIPIX_TIMELINE_MAX_BYTES"),
    )
    timeline_snapshot_every: int = Field(
        50, ge=1, le=10_000, validation_alias=_env("SNIPIX_TIMELINE_SNAPSHOT_EVERY")
    )
    # A timeline autosave at most this many versions behind the head is merged over the
    # revisions in between when it touches nothing they touched (0: never merge, every
    # stale autosave is 412). Each merge reads these revisions, so the bound is also a cost.
    timeline_merge_window: int = Field(
        50, ge=0, le=1_000, validation_alias=_env("SNIPIX_TIMELINE_MERGE_WINDOW")
    )
    transcript_bucket_words: int = Field(
        500, ge=10, le=10_000, validation_alias=_env("SNIPIX_TRANSCRIPT_BUCKET_WORDS")
    )
    transcript_bucket_bytes: int = Field(
        65_536,
        ge=4_096,
        le=4 * 1024 * 1024,
        validation_alias=_env("SNIPIX_TRANSCRIPT_BUCKET_BYTES"),
    )
    # Input bounds. A JSON Patch autosave holds at most this many operations
    # (more: 422; save the whole state with PUT). One transcript upload holds at most this
    # many segments and words (more: 413, nothing written): a ten-hour recording is ~150,000
    # words in ~6,000 segments. Fixed bounds of every body (nesting, arrays, strings) are in
    # wire/models.py; the body size limit is SNIPIX_MAX_BODY_BYTES.
    timeline_max_patch_ops: int = Field(
        10_000, ge=1, le=100_000, validation_alias=_env("SNIPIX_TIMELINE_MAX_PATCH_OPS")
    )
    transcript_max_segments: int = Field(
        20_000, ge=1, le=1_000_000, validation_alias=_env("SNIPIX_TRANSCRIPT_MAX_SEGMENTS")
    )
    transcript_max_words: int = Field(
        200_000, ge=1, le=10_000_000, validation_alias=_env("SNIPIX_TRANSCRIPT_MAX_WORDS")
    )
    retention_days: int = Field(30, ge=1, le=36_500, validation_alias=_env("SNIPIX_RETENTION_DAYS"))
    retention_interval_s: int = Field(
        3_600, ge=0, le=7 * 86_400, validation_alias=_env("SNIPIX_RETENTION_INTERVAL_S")
    )

    # Media files: uploads, thumbnails and trimmed renders on local storage, under
    # `media_root` (SNIPIX_MEDIA_DIR, else `media/` in the data directory). ffmpeg/ffprobe are
    # optional: without them durations and thumbnails are null and trimming answers 501.
    media_dir: Path | None = Field(None, validation_alias=_env("SNIPIX_MEDIA_DIR"))
    media_max_bytes: int = Field(
        2 * 1024**3, ge=1_024, le=2**42, validation_alias=_env("SNIPIX_MEDIA_MAX_BYTES")
    )
    ffmpeg_path: str = Field("ffmpeg", min_length=1, validation_alias=_env("SNIPIX_FFMPEG_PATH"))
    ffprobe_path: str = Field("ffprobe", min_length=1, validation_alias=_env("SNIPIX_FFPROBE_PATH"))
    media_job_timeout_s: float = Field(
        600, gt=0, le=86_400, validation_alias=_env("SNIPIX_MEDIA_JOB_TIMEOUT_S")
    )
    media_max_jobs: int = Field(2, ge=1, le=64, validation_alias=_env("SNIPIX_MEDIA_MAX_JOBS"))
    media_url_ttl_s: int = Field(
        3_600, ge=10, le=7 * 86_400, validation_alias=_env("SNIPIX_MEDIA_URL_TTL_S")
    )

    # Mail (verification and password reset). SMTP_URL: smtp://user:pass@host:587
    # (STARTTLS when the server offers it) or smtps://user:pass@host:465 (TLS from the
    # start); unset: the local profile writes each message to the log and to
    # SNIPIX_MAIL_DIR (`mail_root`) instead. Messages wait in a bounded outbox and are
    # sent in the background, retried with backoff, so a slow or unreachable mail server
    # never holds up a request. Links in the messages point at SNIPIX_WEB_APP_URL.
    smtp_url: SecretStr | None = Field(None, validation_alias=_env("SMTP_URL"))
    mail_from: str = Field(
        "Snipix <no-reply@localhost>",
        min_length=3,
        max_length=320,
        validation_alias=_env("SNIPIX_MAIL_FROM"),
    )
    web_app_url: str = Field(
        "http://localhost:3000", min_length=1, validation_alias=_env("SNIPIX_WEB_APP_URL")
    )
    # The original web app's production build (its `build/` directory), served from this
    # origin when set (api/web_app.py): its pages, assets and API calls then share one
    # origin, so its `<img>` thumbnails get the media cookie. Unset: no page is served.
    web_app_dir: Path | None = Field(None, validation_alias=_env("SNIPIX_WEB_APP_DIR"))
    require_email_verification: bool = Field(
        False, validation_alias=_env("SNIPIX_REQUIRE_EMAIL_VERIFICATION")
    )
    mail_dir: Path | None = Field(None, validation_alias=_env("SNIPIX_MAIL_DIR"))
    mail_timeout_s: float = Field(
        10.0, gt=0, le=300, validation_alias=_env("SNIPIX_MAIL_TIMEOUT_S")
    )
    mail_retry_attempts: int = Field(
        8, ge=1, le=100, validation_alias=_env("SNIPIX_MAIL_RETRY_ATTEMPTS")
    )
    mail_retry_base_ms: int = Field(
        1_000, ge=1, le=600_000, validation_alias=_env("SNIPIX_MAIL_RETRY_BASE_MS")
    )
    mail_retry_cap_ms: int = Field(
        120_000, ge=1, le=3_600_000, validation_alias=_env("SNIPIX_MAIL_RETRY_CAP_MS")
    )
    mail_outbox_size: int = Field(
        1_000, ge=1, le=1_000_000, validation_alias=_env("SNIPIX_MAIL_OUTBOX_SIZE")
    )
    # Verification and reset mails per account and per client address in a moving window
    # (more: the address gets 429; an account over its limit gets no further mail, and
    # forgot-password still answers as always, so the limit reveals no account).
    mail_per_account: int = Field(
        3, ge=1, le=10_000, validation_alias=_env("SNIPIX_MAIL_PER_ACCOUNT")
    )
    mail_per_ip: int = Field(20, ge=1, le=100_000, validation_alias=_env("SNIPIX_MAIL_PER_IP"))
    mail_window_s: int = Field(
        3_600, ge=1, le=86_400, validation_alias=_env("SNIPIX_MAIL_WINDOW_S")
    )
    # Speech recognition (docs/operations.md, "Transcription"): the engine, how many jobs
    # one replica runs at once (each in its own worker process; 0: this replica runs none,
    # another replica or `snipix` process does), the length of the audio chunks a worker
    # decodes at a time (progress and memory per chunk), how long the web app's synchronous
    # `/media/transcribe` waits for its job, and the job lease a dead worker loses.
    transcriber: Literal["pocketsphinx", "faster-whisper", "openai"] = Field(
        "pocketsphinx", validation_alias=_env("SNIPIX_TRANSCRIBER")
    )
    # faster-whisper (the `whisper` extra) reads a converted model from this directory; it
    # never downloads one.
    whisper_model: Path | None = Field(None, validation_alias=_env("SNIPIX_WHISPER_MODEL"))
    # `openai`: an OpenAI-compatible transcription service, `{url}/audio/transcriptions`
    # (e.g. https://api.openai.com/v1), its bearer key (optional for a self-hosted service
    # without one), the model it is asked for, and how long one chunk's request may take.
    transcribe_url: str | None = Field(None, validation_alias=_env("SNIPIX_TRANSCRIBE_URL"))
    transcribe_api_key: SecretStr | None = Field(
        None, validation_alias=_env("SNIPIX_TRANSCRIBE_API_KEY")
    )
    transcribe_model: str = Field(
        "whisper-1", min_length=1, validation_alias=_env("SNIPIX_TRANSCRIBE_MODEL")
    )
    transcribe_timeout_s: float = Field(
        120, gt=0, le=3_600, validation_alias=_env("SNIPIX_TRANSCRIBE_TIMEOUT_S")
    )
    transcribe_workers: int = Field(
        1, ge=0, le=64, validation_alias=_env("SNIPIX_TRANSCRIBE_WORKERS")
    )
    transcribe_chunk_s: float = Field(
        30, ge=1, le=600, validation_alias=_env("SNIPIX_TRANSCRIBE_CHUNK_S")
    )
    transcribe_wait_s: float = Field(
        120, ge=0, le=3_600, validation_alias=_env("SNIPIX_TRANSCRIBE_WAIT_S")
    )
    transcribe_lease_s: float = Field(
        30, ge=1, le=3_600, validation_alias=_env("SNIPIX_TRANSCRIBE_LEASE_S")
    )
    transcribe_poll_s: float = Field(
        5, gt=0, le=3_600, validation_alias=_env("SNIPIX_TRANSCRIBE_POLL_S")
    )
    transcribe_max_attempts: int = Field(
        3, ge=1, le=20, validation_alias=_env("SNIPIX_TRANSCRIBE_MAX_ATTEMPTS")
    )

    # Live project events (`GET /api/v1/projects/{id}/events`, docs/operations.md "Live
    # events"): a heartbeat comment keeps proxies from closing an idle stream and is when
    # a stream re-checks its user's access; streams are bounded per user and per replica
    # (each holds a connection and a queue); a reconnect replays at most so many missed
    # revisions, past that the client is told to reload.
    events_heartbeat_s: float = Field(
        15, ge=0.01, le=300, validation_alias=_env("SNIPIX_EVENTS_HEARTBEAT_S")
    )
    events_max_per_user: int = Field(
        10, ge=1, le=1_000, validation_alias=_env("SNIPIX_EVENTS_MAX_PER_USER")
    )
    events_max_streams: int = Field(
        1_000, ge=1, le=100_000, validation_alias=_env("SNIPIX_EVENTS_MAX_STREAMS")
    )
    events_replay_max: int = Field(
        1_000, ge=1, le=100_000, validation_alias=_env("SNIPIX_EVENTS_REPLAY_MAX")
    )
    events_link_ttl_s: int = Field(
        300, ge=10, le=86_400, validation_alias=_env("SNIPIX_EVENTS_LINK_TTL_S")
    )

    # Compatibility routes: browser origins allowed to call the API (CORS), comma
    # separated. Unset: the original web app's dev server (LOCAL_CORS_ORIGINS) in the local
    # profile, none in production. Exact origins only; `*` is refused.
    cors_origins: str | None = Field(None, validation_alias=_env("SNIPIX_CORS_ORIGINS"))

    host: str = Field("127.0.0.1", min_length=1, validation_alias=_env("SNIPIX_HOST"))
    port: int = Field(8000, ge=0, le=65_535, validation_alias=_env("SNIPIX_PORT"))
    workers: int = Field(1, ge=1, le=64, validation_alias=_env("SNIPIX_WORKERS"))

    migrate_on_start: bool = Field(True, validation_alias=_env("SNIPIX_MIGRATE_ON_START"))
    health_timeout_ms: int = Field(
        1_000, ge=50, le=60_000, validation_alias=_env("SNIPIX_HEALTH_TIMEOUT_MS")
    )
    shutdown_grace_s: int = Field(
        10, ge=0, le=600, validation_alias=_env("SNIPIX_SHUTDOWN_GRACE_S")
    )
    # Connections (`snipix serve`; docs/operations.md, "Security model"). A client that
    # has not sent its whole request head within the header timeout, an idle keep-alive
    # connection, and a body slower than the minimum rate are closed; a head over the
    # size limit is a 431; past the connection bound a new connection closes the oldest
    # one still waiting for its head (so /health/live keeps answering).
    http_header_timeout_s: float = Field(
        10.0, gt=0, le=300, validation_alias=_env("SNIPIX_HTTP_HEADER_TIMEOUT_S")
    )
    http_keepalive_s: int = Field(5, ge=1, le=300, validation_alias=_env("SNIPIX_HTTP_KEEPALIVE_S"))
    http_body_window_s: float = Field(
        30.0, gt=0, le=600, validation_alias=_env("SNIPIX_HTTP_BODY_WINDOW_S")
    )
    http_min_body_rate: int = Field(
        1_024, ge=0, le=100 * 1024 * 1024, validation_alias=_env("SNIPIX_HTTP_MIN_BODY_RATE")
    )
    http_max_header_bytes: int = Field(
        32 * 1024,
        ge=4 * 1024,
        le=1024 * 1024,
        validation_alias=_env("SNIPIX_HTTP_MAX_HEADER_BYTES"),
    )
    http_max_connections: int = Field(
        1_000, ge=10, le=1_000_000, validation_alias=_env("SNIPIX_HTTP_MAX_CONNECTIONS")
    )
    engine_start_timeout_s: float = Field(
        30.0, gt=0, le=600, validation_alias=_env("SNIPIX_ENGINE_START_TIMEOUT_S")
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("mongodb_uri", mode="before")
    @classmethod
    def _blank_uri_is_unset(cls, value: object) -> object:
        # `MONGODB_URI=` in a .env means "use the embedded engine", not "the empty URI".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("mongodb_uri")
    @classmethod
    def _check_mongodb_uri(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_mongodb_uri(value.get_secret_value())
        return value

    @field_validator("mongodb_database")
    @classmethod
    def _check_database(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value or len(value.encode()) > 63 or _BAD_DATABASE_CHARS.search(value):
            raise ValueError(
                'must be 1-63 bytes without spaces or any of / \\ . " $ (MongoDB database name)'
            )
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_cors_origins(cls, value: str | None) -> str | None:
        # Compatibility routes.
        if value is None or not value.strip():
            return None
        origins = [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        for origin in origins:
            if origin == "*":
                raise ValueError(
                    "list the allowed origins explicitly; `*` would let any web page call the API"
                )
            if not _CORS_ORIGIN.fullmatch(origin):
                raise ValueError(
                    "must be comma-separated origins like https://editor.example.com or "
                    "http://localhost:3000 (scheme, host and port; no path)"
                )
        return ",".join(origins)

    # `.env.example` lists these blank: a copied file must not read as "configured".
    @field_validator("redis_url", "jwt_secret", "jwt_public_key", mode="before")
    @classmethod
    def _blank_redis_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in {"redis", "rediss", "unix"}:
                raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("smtp_url", "mail_dir", mode="before")
    @classmethod
    def _blank_smtp_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parts = urlsplit(value.get_secret_value())
            if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
                raise ValueError(
                    "must be smtp://[user:password@]host[:port] or smtps://... (TLS from the start)"
                )
            try:
                parts.port  # noqa: B018 (raises for a port that is not a number)
            except ValueError:
                raise ValueError("the port must be a number from 1 to 65535") from None
        return value

    @field_validator("web_app_url")
    @classmethod
    def _check_web_app_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query:
            raise ValueError(
                "must be the web app's address, like https://app.example.com (no query)"
            )
        return value.strip().rstrip("/")

    @field_validator("web_app_dir", mode="before")
    @classmethod
    def _blank_web_app_dir_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("web_app_dir")
    @classmethod
    def _check_web_app_dir(cls, value: Path | None) -> Path | None:
        # Checked at start-up: a wrong path would otherwise serve every page as a 404.
        if value is not None and not (value / "index.html").is_file():
            raise ValueError(
                "must be the web app's build directory (the one holding index.html, made by "
                "`npm run build`)"
            )
        return value

    @field_validator("jwt_public_key")
    @classmethod
    def _check_public_key(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        # Environment variables often carry PEM newlines as literal "\n".
        pem = value.replace("\\n", "\n").strip()
        if not pem.startswith("-----BEGIN PUBLIC KEY-----"):
            raise ValueError("must be a PEM public key starting with -----BEGIN PUBLIC KEY-----")
        return pem

    @field_validator("jwt_private_key", mode="before")
    @classmethod
    def _blank_private_key_is_unset(cls, value: object) -> object:
        # Accounts. Like JWT_PUBLIC_KEY: literal "\n" allowed, blank means unset.
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            return value.replace("\\n", "\n").strip() or None
        return value

    @model_validator(mode="after")
    def _check_signing_key(self) -> Settings:
        """Accounts: JWT_PRIVATE_KEY is the usable private half of JWT_PUBLIC_KEY.

        Checked here so a wrong key stops start-up in one line instead of failing every
        sign-in; the same check runs for `snipix serve`, the app factory and the CLI.
        """
        if self.jwt_private_key is None:
            return self
        if self.jwt_secret is not None and self.jwt_secret.get_secret_value().strip():
            raise ValueError(
                "JWT_PRIVATE_KEY: set JWT_SECRET (HS256) or JWT_PRIVATE_KEY with "
                "JWT_PUBLIC_KEY (RS256), not both"
            )
        if self.jwt_public_key is None:
            raise ValueError(
                "JWT_PRIVATE_KEY: needs JWT_PUBLIC_KEY (its public half), which verifies the "
                "tokens signed with it"
            )
        problem = _private_key_problem(self.jwt_private_key.get_secret_value(), self.jwt_public_key)
        if problem is not None:
            raise ValueError(f"JWT_PRIVATE_KEY: {problem}")
        return self

    @model_validator(mode="after")
    def _check_transcriber(self) -> Settings:
        """faster-whisper needs a local model directory: refused at start-up, not at the
        first job."""
        if self.transcriber == "faster-whisper" and (
            self.whisper_model is None or not self.whisper_model.is_dir()
        ):
            raise ValueError(
                "SNIPIX_TRANSCRIBER=faster-whisper needs SNIPIX_WHISPER_MODEL naming a local "
                "model directory (a CTranslate2 conversion of a Whisper model)"
            )
        if self.transcriber == "openai":
            parts = urlsplit(self.transcribe_url or "")
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ValueError(
                    "SNIPIX_TRANSCRIBER=openai needs SNIPIX_TRANSCRIBE_URL, the service's "
                    "http(s) base URL (e.g. https://api.openai.com/v1)"
                )
            if parts.username or parts.password:
                raise ValueError(
                    "SNIPIX_TRANSCRIBE_URL: put the key in SNIPIX_TRANSCRIBE_API_KEY, not in "
                    "the URL"
                )
        return self

    @model_validator(mode="after")
    def _check_profile(self) -> Settings:
        if self.mongodb_min_pool_size > self.mongodb_max_pool_size:
            raise ValueError("MONGODB_MIN_POOL_SIZE: must not exceed MONGODB_MAX_POOL_SIZE")
        if self.jwt_secret is not None and self.jwt_public_key is not None:
            raise ValueError(
                "JWT_SECRET: set either JWT_SECRET (HS256) or JWT_PUBLIC_KEY, not both"
            )
        if self.env != "production":
            return self
        if self.password_hash_cost != "standard":  # noqa: S105 (a cost, not a password)
            raise ValueError(
                "SNIPIX_PASSWORD_HASH_COST: only `standard` is allowed when "
                "SNIPIX_ENV=production (`minimal` is for test suites)"
            )
        if self.require_email_verification and self.smtp_url is None:
            raise ValueError(
                "SMTP_URL: is required when SNIPIX_ENV=production and "
                "SNIPIX_REQUIRE_EMAIL_VERIFICATION=true (nobody could verify an address)"
            )
        if self.mongodb_uri is None:
            raise ValueError(
                "MONGODB_URI: is required when SNIPIX_ENV=production "
                "(the embedded engine is for local use only)"
            )
        if self.dev_auth:
            raise ValueError(
                "SNIPIX_DEV_AUTH: X-User-Id dev auth must be off when SNIPIX_ENV=production"
            )
        if self.jwt_secret is None and self.jwt_public_key is None:
            raise ValueError(
                "JWT_SECRET: JWT_SECRET or JWT_PUBLIC_KEY is required when SNIPIX_ENV=production"
            )
        if (
            self.jwt_secret is not None
            and len(self.jwt_secret.get_secret_value()) < _MIN_PRODUCTION_SECRET_LENGTH
        ):
            raise ValueError(
                f"JWT_SECRET: must be at least {_MIN_PRODUCTION_SECRET_LENGTH} characters "
                "when SNIPIX_ENV=production"
            )
        return self

    @property
    def media_root(self) -> Path:
        """Where media files live: SNIPIX_MEDIA_DIR, else `media/` in the data directory."""
        return self.media_dir if self.media_dir is not None else self.data_dir / "media"

    @property
    def mail_root(self) -> Path:
        """Where the local profile writes mail without SMTP_URL: SNIPIX_MAIL_DIR, else
        `mail/` beside the data directory (`.snipix/mail` by default)."""
        return self.mail_dir if self.mail_dir is not None else self.data_dir.parent / "mail"

    @property
    def cors_allowed_origins(self) -> tuple[str, ...]:
        """Origins whose browser requests may call the API; empty: no CORS."""
        if self.cors_origins is not None:
            return tuple(self.cors_origins.split(","))
        return LOCAL_CORS_ORIGINS if self.env == "local" else ()

    @property
    def dev_auth_enabled(self) -> bool:
        """`X-User-Id` identity: on by default in local, never in production."""
        return self.dev_auth if self.dev_auth is not None else self.env == "local"

    @property
    def database_name(self) -> str:
        """MONGODB_DATABASE, else the database named in the URI path, else `snipix`."""
        if self.mongodb_database:
            return self.mongodb_database
        if self.mongodb_uri is not None:
            named = parse_mongodb_uri(self.mongodb_uri.get_secret_value()).get("database")
            if named:
                return str(named)
        return "snipix"

    @property
    def json_logs(self) -> bool:
        """JSON in production always; `auto` means console on a terminal, JSON otherwise."""
        if self.env == "production" or self.log_format == "json":
            return True
        if self.log_format == "console":
            return False
        return not sys.stderr.isatty()

    def with_mongodb_uri(self, uri: str) -> Settings:
        """A copy pointed at `uri` (the embedded engine's address once it is known)."""
        return self.model_copy(update={"mongodb_uri": SecretStr(uri)})

    def secret_values(self) -> list[str]:
        """Raw secret strings, for the log redactor; never print these."""
        secrets: list[str] = []
        if self.mongodb_uri is not None:
            secrets += _url_password_forms(self.mongodb_uri.get_secret_value())
        if self.redis_url is not None:
            secrets += _url_password_forms(self.redis_url.get_secret_value())
        if self.smtp_url is not None:
            secrets += _url_password_forms(self.smtp_url.get_secret_value())
        if self.jwt_secret is not None:
            secrets.append(self.jwt_secret.get_secret_value())
        if self.jwt_private_key is not None:
            secrets.append(self.jwt_private_key.get_secret_value())
        if self.transcribe_api_key is not None:
            secrets.append(self.transcribe_api_key.get_secret_value())
        return [s for s in secrets if s]

    def describe(self) -> dict[str, str]:
        """Every setting by its environment name, secrets masked: safe to print or log."""
        shown: dict[str, str] = {}
        for name, field in type(self).model_fields.items():
            alias = field.validation_alias
            key = alias.choices[0] if isinstance(alias, AliasChoices) else name.upper()
            value = getattr(self, name)
            if name in {"mongodb_uri", "redis_url", "smtp_url"} and value is not None:
                shown[str(key)] = mask_url(value.get_secret_value())
            elif isinstance(value, SecretStr):
                shown[str(key)] = MASK
            elif value is None:
                shown[str(key)] = ""
            else:
                shown[str(key)] = str(value)
        return shown


def parse_mongodb_uri(uri: str) -> dict[str, Any]:
    """Validate a MongoDB URI without DNS or network, returning its parts.

    `mongodb+srv://` parsing in `pymongo.uri_parser.parse_uri` resolves SRV records; the
    shared validator below checks the same syntax and options offline, so a typo in an Atlas
    URI is a start-up error even on a machine that cannot reach DNS.
    """
    if not uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ValueError("must start with mongodb:// or mongodb+srv://")
    from pymongo.uri_parser_shared import _validate_uri

    try:
        parsed: dict[str, Any] = _validate_uri(uri, 27017, True, False, True, None)
    except (InvalidURI, ConfigurationError, ValueError) as error:
        # pymongo's messages name options and hosts, never the password, but keep it certain.
        password = _url_password(uri)
        message = str(error)
        if password:
            message = message.replace(password, MASK)
        raise ValueError(f"is not a valid MongoDB URI: {message}") from None
    return parsed


def mongodb_hosts(uri: str) -> str:
    """The host part of a MongoDB URI (`h1:27017,h2` or the SRV name), for messages."""
    netloc = uri.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    return netloc.rpartition("@")[2]


def mask_url(url: str) -> str:
    """`scheme://user:pass@hosts/...` with the password replaced by `****`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    if not at:
        return url
    user, colon, _password = userinfo.partition(":")
    masked = f"{user}:{MASK}" if colon else user
    return f"{scheme}://{masked}@{hosts}{slash}{tail}"


def _url_password(url: str) -> str:
    authority = url.split("://", 1)[-1].split("/", 1)[0]
    userinfo, at, _hosts = authority.rpartition("@")
    if not at:
        return ""
    return userinfo.partition(":")[2]


def _url_password_forms(url: str) -> list[str]:
    raw = _url_password(url)
    decoded = unquote(raw)
    return [raw, decoded] if raw != decoded else [raw]


def _private_key_problem(private_pem: str, public_pem: str) -> str | None:
    """Accounts: why JWT_PRIVATE_KEY cannot sign tokens JWT_PUBLIC_KEY verifies."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
    from cryptography.hazmat.primitives.serialization import (
        load_pem_private_key,
        load_pem_public_key,
    )

    try:
        key = load_pem_private_key(private_pem.encode(), password=None)
    except (ValueError, TypeError):
        # TypeError: an encrypted key (no passphrase can be configured).
        return "is not a readable, unencrypted PEM private key"
    if not isinstance(key, RSAPrivateKey):
        return "must be an RSA private key (tokens are signed RS256)"
    if key.key_size < _MIN_RSA_KEY_BITS:
        return f"the RSA key has {key.key_size} bits; at least {_MIN_RSA_KEY_BITS} are required"
    try:
        public = load_pem_public_key(public_pem.encode())
    except (ValueError, TypeError):
        return None  # JWT_PUBLIC_KEY's own check names that variable at start-up.
    if (
        not isinstance(public, RSAPublicKey)
        or public.public_numbers() != key.public_key().public_numbers()
    ):
        return "is not the private half of JWT_PUBLIC_KEY"
    return None


def describe_errors(error: ValidationError) -> list[str]:
    """One line per bad variable: `invalid setting NAME: what is wrong`.

    The offending value is never echoed (it may be a secret).
    """
    lines: list[str] = []
    for item in error.errors(include_input=False, include_url=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["loc"]:
            lines.append(f"invalid setting {str(item['loc'][0]).upper()}: {message}")
        else:
            lines.append(f"invalid setting {message}")
    return lines
