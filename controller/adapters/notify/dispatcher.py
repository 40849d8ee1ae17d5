"""The notification dispatcher: drains the outboxes that the engine fills in status.

Contract with the reconciler: after it has written an object's status (and, cheaply, after
any pass over an object whose outbox is not empty), it calls ``submit(kind, namespace,
name)``. ``submit`` only puts the key ``namespace/Kind/name`` in the runtime's work queue
(bounded, deduplicating, one worker per key, per-namespace bound, delays on the injected
clock) and returns at once. The dispatcher is a reconciler of that queue (:meth:`reconcile`):
``rolloutctl run`` hosts it on the manager as the ``notifications`` controller, like
controller-runtime runs a second controller on a shared manager; tests run it standalone
(:meth:`Dispatcher.start`, or :meth:`Dispatcher.work_once` with a FakeClock). One pass:

1. read the object; pick the outbox entries that are due (``nextAttemptAt`` unset or past);
2. **claim** them with one status write guarded by resourceVersion (``attempts`` + 1,
   ``nextAttemptAt`` = now + claim TTL), so a second replica leaves them alone and a
   crashed one's claim expires (a claim that lost a race starts the pass again, with
   tenacity's short jittered backoff, ``write_attempts`` times);
3. deliver each entry, in outbox order, to its channels (``channels.py``: Slack thread
   reply, criticalChannel copy, e-mail, incident webhook); an entry whose earlier attempt
   may have reached Slack (``attempts`` > 0 before the claim) is first looked up by its
   dedup key in Slack message metadata and skipped if found;
4. **record** the outcome with a second guarded write (on 409: re-read, merge with
   ``api.notification_merge``, retry in place with tenacity's short jittered backoff):
   delivered entries move to ``sent``, failed ones keep their ``attempts``, get
   ``nextAttemptAt`` (exponential backoff, or Slack's Retry-After) and ``lastError``;
5. update the Slack root message in place when the live state it shows has changed.

Order is kept per channel: an entry never overtakes an earlier one on a channel the earlier
one still waits for. Nothing here raises into the caller; every send has a timeout.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from controller.adapters.notify.channels import (
    DeliveryPass,
    EntryResult,
    LiveView,
    backoff,
    needed,
    registry,
)
from controller.adapters.notify.errors import DeliveryError, SecretUnavailable
from controller.adapters.notify.metrics import NotifyMetrics, default_metrics
from controller.adapters.notify.redact import redact, redacting_logger
from controller.adapters.notify.routing import (
    ChannelName,
    metric_type,
)
from controller.adapters.notify.slack import DEFAULT_BASE_URL, SlackBot
from controller.adapters.notify.store import NotificationStore
from controller.adapters.notify.subject import (
    Kind,
    ObjectRef,
    Subject,
    UnreadableState,
)
from controller.api.notification_merge import KEEP, Keep, merge_notifications
from controller.api.notifications import (
    NotificationState,
    OutgoingMessage,
    SecretKeyRef,
)
from controller.clock import SystemClock
from controller.errors import Conflict, NotFound, Transient
from controller.ports import Clock, WorkQueue

log = redacting_logger("controller.adapters.notify")

# Conflicting writes of one pass's outcome tried before giving up (each conflict is another
# writer's success, so this is generous: at most ~25 s with the backoff below).
_RECORD_CONFLICT_ATTEMPTS = 50
#: between tries after a conflict: short and jittered, so writers in lockstep drift apart
_CONFLICT_WAIT = wait_random_exponential(multiplier=0.02, max=0.5)



@dataclass(frozen=True)
class DispatcherConfig:
    cluster_name: str = ""
    slack_base_url: str = DEFAULT_BASE_URL
    #: timeout of every Slack, SMTP and webhook call, in seconds
    send_timeout: float = 10.0
    #: a Slack rate limit asking to wait at most this long is waited out in place (once);
    #: a longer one reschedules the message
    rate_limit_inline_wait: float = 5.0
    workers: int = 2
    queue_size: int = 1000
    #: how long a replica's claim on outbox entries holds (bounds one delivery pass)
    claim_ttl: float = 120.0
    backoff_base: float = 5.0
    backoff_max: float = 600.0
    #: attempts after which an entry is dropped (recorded, counted, an Event)
    max_attempts: int = 15
    secret_ttl: float = 60.0
    #: a root message whose only change is measured values (not phase, step, weight or a
    #: verdict) is edited at most this often, so many plans stay within Slack's limits
    root_refresh_interval: float = 60.0
    #: guarded status writes tried per pass before giving up (409 or API errors)
    write_attempts: int = 5
    #: names this replica in Events and logs
    identity: str = ""
    smtp_ssl_context: ssl.SSLContext | None = None



# ----------------------------------------------------------------------------- pass state


class _SecretCache:
    def __init__(self, store: NotificationStore, ttl: float, clock: Clock) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str, str], tuple[str, float]] = {}

    def get(self, namespace: str, ref: SecretKeyRef) -> str:
        k = (namespace, ref.name, ref.key)
        now = self._clock.monotonic()
        with self._lock:
            hit = self._values.get(k)
            if hit is not None and hit[1] > now:
                return hit[0]
        value = self._store.read_secret(namespace, ref)
        with self._lock:
            self._values[k] = (value, now + self._ttl)
        return value

    def forget(self, namespace: str, ref: SecretKeyRef) -> None:
        with self._lock:
            self._values.pop((namespace, ref.name, ref.key), None)


class Dispatcher:
    """Delivers outbox entries in the background; see the module docstring.

    A reconciler of notifications (:meth:`reconcile`, keys ``namespace/Kind/name``) on the
    runtime's work queue, given as QUEUE (``controller.runtime.workqueue.WorkQueue``, with
    the same injectable clock as everything else): the queue dedups keys, never gives one
    key to two workers, bounds the keys of one namespace in progress and holds the delayed
    retries. :meth:`start` runs ``config.workers`` threads on it; tests call
    :meth:`work_once` instead, or :meth:`process` for one pass over one object.
    """

    def __init__(
        self,
        store: NotificationStore,
        config: DispatcherConfig | None = None,
        *,
        clock: Clock | None = None,
        metrics: NotifyMetrics | None = None,
        queue: WorkQueue | None = None,
    ) -> None:
        self.config = config or DispatcherConfig()
        self._store = store
        self._clock: Clock = clock or SystemClock()
        self._metrics = metrics or default_metrics()
        self.clock, self.metrics = self._clock, self._metrics  # for the channels (Host)
        self._queue = queue
        if queue is not None:
            self._metrics.queue_depth.set_function(self.pending)
        self._secrets = _SecretCache(store, self.config.secret_ttl, self._clock)
        self._bots: OrderedDict[str, SlackBot] = OrderedDict()
        self._bots_lock = threading.Lock()
        self._registry = registry(self)
        self._by_name = {c.name: c for c in self._registry}
        self._views = [c for c in self._registry if isinstance(c, LiveView)]
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle

    @property
    def queue(self) -> WorkQueue:
        if self._queue is None:
            raise RuntimeError("this Dispatcher has no work queue: pass queue=WorkQueue(...) "
                               "(controller.runtime.workqueue) to submit or start it")
        return self._queue

    def start(self) -> Dispatcher:
        if self._threads:
            return self
        self.queue  # noqa: B018  (fails early without a queue)
        for i in range(max(1, self.config.workers)):
            t = threading.Thread(target=self._work, name=f"notify-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work; workers finish the pass they are in (bounded by timeouts)."""
        if self._queue is not None:
            self._queue.shutdown()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def __enter__(self) -> Dispatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def submit(self, kind: str, namespace: str, name: str) -> bool:
        """Ask for the object's outbox to be delivered. Never blocks, never raises; False when
        the queue is full (the next reconcile submits again)."""
        try:
            ref = ObjectRef(Kind(kind), namespace, name)
        except ValueError:
            log.error("submit: unknown kind %r", kind)
            return False
        if self.queue.try_add(ref.key):
            return True
        self._metrics.dropped.labels("QueueFull").inc()
        return False

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True when nothing is queued or in progress (retries scheduled later may remain).
        Real time: for shutdown and end-to-end tests."""
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while len(self.queue) or self.queue.processing():
            if time.monotonic() >= deadline:
                return False
            pause.wait(0.02)
        return True

    def pending(self) -> int:
        """Keys queued or waiting for a retry."""
        return len(self.queue) + self.queue.waiting()

    def _work(self) -> None:
        while self.work_once(timeout=None):
            pass

    def work_once(self, timeout: float | None = 0.0) -> bool:
        """Take one key from the queue (waiting up to TIMEOUT; None: until one comes),
        process it and schedule its next pass. False when no key came (or shut down)."""
        key = self.queue.get(timeout)
        if key is None:
            return False
        try:
            delay = self.reconcile(key)
        except Exception as exc:  # a bug must not kill the worker
            log.error("notification pass for %s failed: %s", key, type(exc).__name__)
            log.debug("notification pass for %s failed", key, exc_info=True)
            delay = self.config.backoff_base
        finally:
            self.queue.done(key)
        if delay is not None:
            self.queue.add_after(key, delay)
        return True

    def reconcile(self, key: str) -> float | None:
        """``ports.Reconciler``: one pass over the object of KEY (``namespace/Kind/name``)."""
        return self.process(ObjectRef.from_key(key))

    # ------------------------------------------------------------------ one pass

    def process(self, ref: ObjectRef) -> float | None:
        """One delivery pass over REF (synchronously). Returns the seconds after which the
        object wants another pass, or None when nothing is left to do."""
        cfg = self.config
        try:
            return Retrying(  # a claim that lost a race: read again and see what is left
                retry=retry_if_exception_type(Conflict), wait=_CONFLICT_WAIT,
                stop=stop_after_attempt(cfg.write_attempts), reraise=True,
            )(self._pass, ref)
        except Conflict:
            return cfg.backoff_base

    def _pass(self, ref: ObjectRef) -> float | None:
        """:meth:`process`, once; raises Conflict when its claim lost a race."""
        cfg = self.config
        try:
            subject = self._store.read(ref)
        except NotFound:
            return None
        except UnreadableState as exc:
            log.error("%s", exc)
            return None
        except Transient as exc:
            log.warning("cannot read %s: %s", ref, exc)
            return cfg.backoff_base
        if subject.settings_error is not None:
            log.warning("%s: %s; not delivering", ref, subject.settings_error)
            return None
        now = self._clock.now()
        work = self._due(subject, now)
        if not work and not any(v.stale(subject) for v in self._views):
            return self._next_delay(subject.state, now)
        original = {e.key: e for e in subject.state.outbox}
        channels = self._channels(subject)
        if any(channels[k] for k in work):
            try:
                subject = self._store.write_state(subject, _claim(subject.state, work, now,
                                                                  cfg.claim_ttl))
            except NotFound:
                return None
            except Transient as exc:
                log.warning("cannot claim notifications of %s: %s", ref, exc)
                return cfg.backoff_base
        p = DeliveryPass(
            subject=subject,
            now=now,
            deadline=self._clock.monotonic()
            + max(cfg.claim_ttl / 2, cfg.claim_ttl - self._send_budget()),
            thread=subject.state.slack,
            incident=subject.state.incident,
            original=original,
        )
        self._deliver(p, work)
        for view in self._views:
            view.refresh(p)
        return self._record(p)

    def _send_budget(self) -> float:
        # The longest one send may take: a timeout, an in-place rate-limit wait, a retry.
        return 2 * self.config.send_timeout + self.config.rate_limit_inline_wait + 1

    def _channels(self, subject: Subject) -> dict[str, list[ChannelName]]:
        """Per outbox entry, the channels it still needs, in delivery order."""
        return needed(self._registry, subject)

    def _due(self, subject: Subject, now: datetime) -> list[str]:
        """Keys of the entries to work on now: due, and with no channel or at least one
        channel not held up by an earlier entry that is waiting (backoff, or another
        replica's claim)."""
        channels = self._channels(subject)
        blocked: set[ChannelName] = set()
        keys = []
        for e in subject.state.outbox:
            needed = set(channels[e.key])
            if e.next_attempt_at is not None and e.next_attempt_at > now:
                blocked |= needed
                continue
            if not needed or needed - blocked:
                keys.append(e.key)
        return keys

    def _next_delay(self, state: NotificationState, now: datetime) -> float | None:
        """When the earliest waiting entry is due; entries held behind it are due with it."""
        if not state.outbox:
            return None
        waits = [
            (e.next_attempt_at - now).total_seconds()
            for e in state.outbox
            if e.next_attempt_at is not None and e.next_attempt_at > now
        ]
        return max(0.05, min(waits)) if waits else self.config.backoff_base

    # ------------------------------------------------------------------ delivering

    def _deliver(self, p: DeliveryPass, work: list[str]) -> None:
        todo = set(work)
        channels = self._channels(p.subject)
        for e in p.subject.state.outbox:
            needed = set(channels[e.key])
            if e.key not in todo:
                if e.next_attempt_at is not None and e.next_attempt_at > p.now:
                    p.blocked |= needed  # claimed by another replica, or backing off
                continue
            before = p.original.get(e.key, e)
            r = EntryResult(delivered=set(e.delivered))
            p.results[e.key] = r
            held = False
            for ch in channels[e.key]:
                if ch in p.blocked or ch in p.failed:
                    held = True
                    continue
                if self._clock.monotonic() > p.deadline:
                    p.cut_short = True
                    held = True
                    continue
                r.attempted = True
                started = time.monotonic()
                try:
                    self._send(p, ch, e, before.attempts)
                except DeliveryError as err:
                    p.failed[ch] = err
                    r.error = err
                    self._metrics.failed.labels(str(ch), err.reason).inc()
                    log.warning("%s: %s %s not delivered: %s", p.subject.ref, e.type, e.key,
                                err.message)
                    continue
                self._metrics.send_seconds.labels(str(ch)).observe(time.monotonic() - started)
                r.delivered.add(ch)
                self._metrics.sent.labels(str(ch), metric_type(e)).inc()
            if r.error is None and not held:
                r.complete = True
            elif r.error is not None and e.attempts >= self.config.max_attempts:
                r.gave_up = r.complete = True
                self._metrics.dropped.labels("GaveUp").inc()

    def _send(self, p: DeliveryPass, name: ChannelName, e: OutgoingMessage,
              attempts_before: int) -> None:
        channel = self._by_name[name]
        try:
            channel.send(p, e, attempts_before)
        except DeliveryError as err:
            if err.reason == "AuthFailed" and p.subject.settings is not None:
                for ref in channel.credentials(p.subject.settings):
                    if ref is not None:
                        self._secrets.forget(p.subject.ref.namespace, ref)
            raise

    def secret(self, p: DeliveryPass, ch: ChannelName, ref: SecretKeyRef) -> str:
        try:
            return self._secrets.get(p.subject.ref.namespace, ref)
        except SecretUnavailable as exc:
            raise DeliveryError(ch, "SecretUnavailable", str(exc), permanent=True) from None
        except Transient as exc:
            raise DeliveryError(ch, "SecretUnavailable", str(exc)) from None

    def bot(self, p: DeliveryPass, ch: ChannelName) -> SlackBot:
        settings = p.subject.settings
        assert settings is not None and settings.slack is not None
        assert settings.slack.token_secret_ref is not None
        token = self.secret(p, ch, settings.slack.token_secret_ref)
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self._bots_lock:
            bot = self._bots.get(digest)
            if bot is not None:
                self._bots.move_to_end(digest)
                return bot
        bot = SlackBot(token, base_url=self.config.slack_base_url,
                       timeout=self.config.send_timeout,
                       max_inline_wait=self.config.rate_limit_inline_wait)
        with self._bots_lock:
            bot = self._bots.setdefault(digest, bot)
            while len(self._bots) > 64:
                self._bots.popitem(last=False)
        return bot

    # ------------------------------------------------------------------ recording

    def _record(self, p: DeliveryPass) -> float | None:
        cfg = self.config
        subject = p.subject
        now = self._clock.now()
        errors = [r.error for r in p.results.values() if r.error is not None]
        if p.root_error is not None:
            errors.append(p.root_error)
        try:
            written = self._write_outcome(p, now)
        except NotFound:
            return None
        if written is None:
            # The claim expires by itself and the entries are looked up before reposting.
            log.error("gave up recording notifications of %s; they will be checked and "
                      "retried after %.0f s", subject.ref, cfg.claim_ttl)
            return cfg.claim_ttl
        self._announce_failures(written, p, errors)
        if p.cut_short:
            return 0.0
        # A failed root update is tried again after its backoff (by this timer, or by a
        # submit after it; submits before it leave the root alone).
        delay = self._next_delay(written.state, now)
        if p.root_retry is not None:
            delay = p.root_retry if delay is None else min(delay, p.root_retry)
        return delay

    def _write_outcome(self, p: DeliveryPass, now: datetime) -> Subject | None:
        """Write this pass's outcome merged into the stored state; None when it could not be
        written. A conflict means another writer (the reconciler, another replica) wrote
        first: what was delivered must still be recorded (else it stays claimed, hence
        unsent and unrecorded, until the claim expires), so a conflict is retried in place
        at once, re-reading and re-merging, with a short jittered backoff (replicas writing
        in lockstep drift apart). Each conflict is another writer's success, so the bound is
        a generous count, not the pass's delivery deadline: a pass that used its time up
        delivering must not then give up on its first conflict (that left two replicas'
        messages claimed, hence unrecorded, for the claim's two minutes). Merging by key is
        right even after the claim expired: what was delivered is recorded as sent. Other
        store errors get ``write_attempts`` tries. Raises NotFound when the object is
        gone."""
        cfg = self.config
        subject = p.subject
        store_errors = 0

        def write() -> Subject:
            nonlocal subject, store_errors
            state = _merge(subject.state, p, now, cfg)
            if state == subject.state:
                return subject
            try:
                return self._store.write_state(subject, state)
            except Conflict:
                try:
                    subject = self._store.read(subject.ref)
                except Transient:
                    store_errors += 1
                raise
            except Transient as exc:
                store_errors += 1
                log.warning("cannot record notifications of %s: %s", subject.ref, exc)
                raise

        def give_up(state: RetryCallState) -> bool:
            return (store_errors >= cfg.write_attempts
                    or state.attempt_number >= _RECORD_CONFLICT_ATTEMPTS)

        try:
            return Retrying(
                retry=retry_if_exception_type((Conflict, Transient)),
                wait=_CONFLICT_WAIT, stop=give_up, reraise=True,
            )(write)
        except (Conflict, Transient):
            return None

    def _announce_failures(self, subject: Subject, p: DeliveryPass,
                           errors: list[DeliveryError]) -> None:
        first = [
            r.error for key, r in p.results.items()
            if r.error is not None and p.original.get(key) is not None
            and p.original[key].attempts == 0
        ]
        gave_up = [key for key, r in p.results.items() if r.gave_up]
        if first:
            self._store.record_event(subject, "NotificationFailed", "; ".join(
                sorted({f"{err.channel}: {err.message}" for err in first})))
        if gave_up:
            self._store.record_event(subject, "NotificationDropped", (
                f"gave up after {self.config.max_attempts} attempts on "
                + ", ".join(gave_up)))


class NullNotifier:
    """The null object: a controller without notifications (tests, ``simulate``)."""

    def submit(self, kind: str, namespace: str, name: str) -> bool:
        return True


def _claim(state: NotificationState, keys: list[str], now: datetime, ttl: float
           ) -> NotificationState:
    until = now + timedelta(seconds=ttl)
    wanted = set(keys)
    return state.model_copy(update={"outbox": [
        e.model_copy(update={"attempts": e.attempts + 1, "next_attempt_at": until})
        if e.key in wanted else e
        for e in state.outbox
    ]})


def _merge(fresh: NotificationState, p: DeliveryPass, now: datetime, cfg: DispatcherConfig
           ) -> NotificationState:
    """FRESH (the state as stored now) with this pass's outcome applied by key."""
    updates: dict[str, OutgoingMessage | None] = {}
    failures = 0
    last_error: str | None = None
    for e in fresh.outbox:
        r = p.results.get(e.key)
        if r is None:
            continue
        before = p.original.get(e.key, e)
        if r.error is not None:
            failures += 1
            last_error = f"{e.key} {r.error.channel}: {r.error.message}"
        if r.complete:
            if r.gave_up:
                last_error = f"gave up on {e.key} after {e.attempts} attempts: {last_error}"
            updates[e.key] = None
            continue
        if r.error is not None:
            nxt: datetime | None = now + timedelta(seconds=backoff(cfg, e.attempts, r.error))
            err_text: str | None = f"{r.error.channel}: {r.error.message}"
        else:
            # Held behind an earlier entry, or the pass ran out of time: not a failure, due
            # again as soon as what held it is.
            nxt = None
            err_text = e.last_error
        updates[e.key] = e.model_copy(update={
            "attempts": e.attempts if r.attempted else before.attempts,
            "next_attempt_at": nxt,
            "delivered": sorted(r.delivered),
            "last_error": redact(err_text) if err_text else None,
        })
    state_error: str | Keep | None = KEEP
    if last_error is not None:
        state_error = redact(last_error)
    elif p.root_error is not None:
        state_error = redact(f"root message: {p.root_error.message}")
    return merge_notifications(
        fresh,
        update=lambda e: updates.get(e.key, e),
        done=[key for key, r in p.results.items() if r.complete],
        slack=p.thread if p.thread_changed else KEEP,
        incident=p.incident if p.incident_changed else KEEP,
        failures=failures + (1 if p.root_error is not None else 0),
        last_error=state_error,
    )


__all__ = ["Dispatcher", "DispatcherConfig", "NullNotifier", "SystemClock"]
