"""The services of one process, built once: the composition root every entry point uses.

The app's lifespan builds them from what it opened (database, unit of work, cache,
deferred writes, limiter, metrics) and keeps them in `Resources.services`; the routers
hand them out. The CLI and jobs build theirs the same way, so no path gets a service wired
differently (a projects service without the media purge hook, say).
"""

from __future__ import annotations

from dataclasses import dataclass

from snipix.accounts.email_flows import EmailFlows
from snipix.accounts.email_tokens import EmailTokenRepository
from snipix.accounts.metrics import LoginMetrics
from snipix.accounts.passwords import PasswordHasher
from snipix.accounts.repository import LockoutRepository, UserRepository
from snipix.accounts.revocation import SessionGate
from snipix.accounts.service import AccountService, account_service
from snipix.accounts.throttle import LoginThrottle
from snipix.accounts.token_issuer import TokenIssuer
from snipix.audit.repository import AuditRepository
from snipix.cache.service import Cache
from snipix.catalogue import PURGED
from snipix.db.client import Database
from snipix.db.deferred import DeferredWrites
from snipix.db.transactions import UnitOfWork
from snipix.events.bus import EventBus
from snipix.events.stream import StreamBounds
from snipix.mail.outbox import MailMetrics, Outbox
from snipix.mail.transport import transport_from_settings
from snipix.media.service import MediaRuntime, MediaService
from snipix.media.storage import purge_hook
from snipix.observability.metrics import Metrics
from snipix.projects.members import MemberRepository
from snipix.projects.service import ProjectService, project_service
from snipix.projects.sharing import MembershipHook, SharingService
from snipix.security.limiter import Limiter
from snipix.sessions.repository import SessionRepository
from snipix.sessions.service import SessionService
from snipix.settings import Settings
from snipix.timelines.repository import TimelineRepository
from snipix.timelines.service import TimelineService
from snipix.transcription.engines import build_transcriber
from snipix.transcription.remote import HttpTranscriber
from snipix.transcription.repository import JobRepository
from snipix.transcription.service import TranscriptionService
from snipix.transcripts.repository import TranscriptRepository
from snipix.transcripts.service import TranscriptService


@dataclass(frozen=True, slots=True)
class Services:
    """One instance of each service. They hold only what the process opened, never
    request state, so one set serves every request."""

    projects: ProjectService
    # Who else may open a project, and as what.
    sharing: SharingService
    timelines: TimelineService
    transcripts: TranscriptService
    sessions: SessionService
    media: MediaService
    # Speech recognition jobs and filler removal, over the four services above.
    transcription: TranscriptionService
    accounts: AccountService
    # Verification and password-reset mails, sent through `outbox`.
    account_email: EmailFlows
    # Messages waiting for the mail server; the lifespan closes it at shutdown.
    outbox: Outbox
    # Whether a token or media link is still accepted (its session generation), checked on
    # every authenticated request: the same cache the account service invalidates.
    session_gate: SessionGate
    # Live project events: every service above publishes its committed changes here; the
    # event streams subscribe (Redis pub/sub across replicas, in process without Redis).
    events: EventBus
    # How many event streams this process holds open, in all and per user.
    streams: StreamBounds


def build_services(
    settings: Settings,
    db: Database,
    unit: UnitOfWork,
    *,
    cache: Cache,
    deferred: DeferredWrites,
    limiter: Limiter,
    metrics: Metrics,
    events: EventBus | None = None,
    on_membership_change: MembershipHook | None = None,
) -> Services:
    """Every service on `db`. `cache`: the app's, or `Cache.disabled()` for tools that change
    nothing a running service caches. `metrics`: the app's holder, in which the services
    declare their own series (sign-ins); the limiter brings the rate limits'. `events`: the
    app's bus (the lifespan picks Redis or in process); tools get one nobody listens to.
    `on_membership_change(project_id, user_id)`: called after each member is added,
    re-roled or removed; by default the bus's, so every replica's live event streams of
    the project re-check their user's access."""
    events = events if events is not None else EventBus.unobserved()
    if on_membership_change is None:
        on_membership_change = events.on_membership_change
    # A purge (admin or retention) also removes the project's media files.
    projects = project_service(
        db, unit, cache=cache, owned=PURGED, on_purge=[purge_hook(settings)], events=events
    )
    gate = SessionGate(UserRepository(db), cache)
    hasher = PasswordHasher.at_cost(settings.password_hash_cost)
    accounts = account_service(
        db,
        settings,
        issuer=TokenIssuer.from_settings(settings),
        hasher=hasher,
        # The failure counts live where the rate limits do (Redis if any); lockouts
        # also in the database, so none is forgotten when Redis fails.
        throttle=LoginThrottle.from_settings(settings, limiter, LockoutRepository(db)),
        metrics=LoginMetrics(metrics),
        rate_limits=limiter.metrics,
        gate=gate,
    )
    # SMTP_URL, else files in the local profile: the transport decides, the outbox retries.
    outbox = Outbox.from_settings(settings, transport_from_settings(settings), MailMetrics(metrics))
    timelines = TimelineService(
        TimelineRepository(db),
        projects,
        cache,
        max_bytes=settings.timeline_max_bytes,
        snapshot_every=settings.timeline_snapshot_every,
        deferred=deferred,
        events=events,
        merge_window=settings.timeline_merge_window,
    )
    transcripts = TranscriptService(
        TranscriptRepository(db),
        projects,
        bucket_words=settings.transcript_bucket_words,
        bucket_bytes=settings.transcript_bucket_bytes,
        max_segments=settings.transcript_max_segments,
        max_words=settings.transcript_max_words,
        events=events,
    )
    media = MediaService(projects, MediaRuntime.from_settings(settings))
    return Services(
        projects=projects,
        sharing=SharingService(
            projects,
            MemberRepository(db),
            UserRepository(db),
            AuditRepository(db),
            outbox=outbox,
            web_app_url=settings.web_app_url,
            on_membership_change=on_membership_change,
        ),
        timelines=timelines,
        transcripts=transcripts,
        sessions=SessionService(SessionRepository(db), projects, events=events),
        media=media,
        transcription=TranscriptionService(
            JobRepository(db),
            projects=projects,
            transcripts=transcripts,
            timelines=timelines,
            media=media,
            transcriber=(
                HttpTranscriber.from_settings(settings)
                if settings.transcriber == "openai"
                else build_transcriber(settings.transcriber, whisper_model=settings.whisper_model)
            ),
            settings=settings,
        ),
        accounts=accounts,
        account_email=EmailFlows.from_settings(
            settings,
            UserRepository(db),
            EmailTokenRepository(db),
            accounts,
            hasher=hasher,
            outbox=outbox,
            limiter=limiter,
        ),
        outbox=outbox,
        session_gate=gate,
        events=events,
        streams=StreamBounds(
            max_per_user=settings.events_max_per_user,
            max_streams=settings.events_max_streams,
            metrics=events.metrics,
        ),
    )
