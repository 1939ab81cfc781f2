"""Every Redis key prefix and channel name the service uses, in one place."""

from __future__ import annotations

import hashlib

__all__ = [
    "ACCESS_TOKEN_PREFIX",
    "ACCESS_TOKEN_VALUE_PREFIX",
    "ACCOUNT_PREFIX",
    "ACCOUNT_SERVICES_PREFIX",
    "ACTIVE_PREFIX",
    "APIKEY_PREFIX",
    "API_KEY_SID_PREFIX",
    "APPS_SET",
    "APP_PREFIX",
    "AUTH_BLOCK_CHANNEL",
    "AUTH_BLOCK_PREFIX",
    "AUTH_FAIL_PREFIX",
    "BUCKET_PREFIX",
    "CAMARA_ASSERTION_JTI_PREFIX",
    "CAMARA_CIBA_PREFIX",
    "CAMARA_CODE_PREFIX",
    "CAMARA_SIGNING_KEY",
    "CAMARA_TOKEN_PREFIX",
    "CHALLENGE_INDEX_PREFIX",
    "CHALLENGE_PREFIX",
    "ENTITY_INDEX_PREFIX",
    "ENTITY_PREFIX",
    "FACTOR_CREATIONS_PREFIX",
    "FACTOR_CREDENTIAL_PREFIX",
    "FACTOR_INDEX_PREFIX",
    "FACTOR_PREFIX",
    "FRAUD_CC_PREFIX",
    "FRAUD_POLICY_PREFIX",
    "FRAUD_WINDOW_PREFIX",
    "JTI_PREFIX",
    "OUTBOX_PREFIX",
    "PASSKEY_CHALLENGE_PREFIX",
    "PASSKEY_CREDENTIAL_PREFIX",
    "PASSKEY_REGISTRATION_PREFIX",
    "PROVIDER_MESSAGE_PREFIX",
    "PROVIDER_RECEIPT_PREFIX",
    "RATE_LIMIT_BUCKETS_PREFIX",
    "RATE_LIMIT_NAMES_PREFIX",
    "RATE_LIMIT_PREFIX",
    "RATE_WINDOW_PREFIX",
    "RECENT_PREFIX",
    "SANDBOX_OP_CODE_PREFIX",
    "SA_SESSION_PREFIX",
    "SEND_CLAIM_PREFIX",
    "SERVER_KEY",
    "SERVICE_PREFIX",
    "SERVICE_RATE_LIMITS_PREFIX",
    "SERVICE_WEBHOOKS_PREFIX",
    "SIM_SWAP_CACHE_PREFIX",
    "TEMPLATES_PREFIX",
    "TWILIO_WEBHOOK_PREFIX",
    "VERIFICATION_PREFIX",
    "WAKE_CHANNEL",
    "WEBHOOK_FAILED_SET",
    "WEBHOOK_PREFIX",
    "WEBHOOK_RETRY_SET",
    "WORKERS_SET",
    "WORKER_JOBS_PREFIX",
    "hashed_key_part",
]

PREFIX = "vo:"
# hash per outbound message id ("<request id>:<step>"): provider name -> "sending" | "failed" |
# "ok:<vendor id>"; a provider is used at most once per message, even across a crashed worker
SEND_CLAIM_PREFIX = PREFIX + "send:"
# hash: "<provider>:<vendor message id>" -> {rid, step, channel, country, sent_ms, seen:<status>},
# so a delivery receipt finds the step it speaks of (and each status is counted once)
PROVIDER_MESSAGE_PREFIX = PREFIX + "pmsg:"
# the sandbox operator's CAMARA/OIDC server (orchestrator/sandbox/operator_tokens.py), each
# keyed by the SHA-256 of the secret it stands for, TTL <= 300 s: authorization codes, CIBA
# auth_req_ids, access tokens, used client-assertion jtis; and its id_token signing key
CAMARA_CODE_PREFIX = PREFIX + "camop:code:"
CAMARA_CIBA_PREFIX = PREFIX + "camop:ciba:"
CAMARA_TOKEN_PREFIX = PREFIX + "camop:tok:"
CAMARA_ASSERTION_JTI_PREFIX = PREFIX + "camop:ajti:"
CAMARA_SIGNING_KEY = PREFIX + "camop:signing-key"
# sorted sets, capped, expiring with the retention: the most recent verifications, all of them
# ("all", 10,000) and per account ("a:<account>", 2,000), for the operations console
RECENT_PREFIX = PREFIX + "recent:"
# string "1"/"0" with a 60 s TTL: "<number digest>:<hours>" -> whether its SIM changed within
# those hours, as the covering operator said (the SIM-swap gate asks once a minute per number)
SIM_SWAP_CACHE_PREFIX = PREFIX + "simswap:"
# string: a receipt that came before its vendor id was mapped (SMPP answers that fast)
PROVIDER_RECEIPT_PREFIX = PREFIX + "prcpt:"
# hash: application record (keys, secrets, status URL)
APP_PREFIX = PREFIX + "app:"
# hash: account (AC…) with its auth token
ACCOUNT_PREFIX = PREFIX + "acct:"
# hash: API key (SK…) -> account, secret hash
API_KEY_SID_PREFIX = PREFIX + "sk:"
# string: Twilio-dialect service (VA…) as JSON
SERVICE_PREFIX = PREFIX + "svc:"
# sorted set: an account's services by creation time
ACCOUNT_SERVICES_PREFIX = PREFIX + "acct-svcs:"
# string: Twilio-dialect rate limit (RK…) as JSON
RATE_LIMIT_PREFIX = PREFIX + "rl:"
# sorted set: a service's rate limits (RK…) by creation time
SERVICE_RATE_LIMITS_PREFIX = PREFIX + "svc-rls:"
# hash: a service's rate limit unique_name -> RK sid (uniqueness per service)
RATE_LIMIT_NAMES_PREFIX = PREFIX + "rl-names:"
# string: a rate limit's bucket (BL…) as JSON
BUCKET_PREFIX = PREFIX + "bl:"
# sorted set: a rate limit's buckets (BL…) by creation time
RATE_LIMIT_BUCKETS_PREFIX = PREFIX + "rl-bls:"
# sorted set with TTL: "<bucket sid>:<value hash>" -> start times in the bucket's sliding window
RATE_WINDOW_PREFIX = PREFIX + "rlw:"
# Entity → Factor → Challenge (strings of JSON, and sorted-set indexes by creation time)
ENTITY_PREFIX = PREFIX + "entity:"
ENTITY_INDEX_PREFIX = PREFIX + "entities:"
FACTOR_PREFIX = PREFIX + "factor:"
FACTOR_INDEX_PREFIX = PREFIX + "factors:"
CHALLENGE_PREFIX = PREFIX + "challenge:"
CHALLENGE_INDEX_PREFIX = PREFIX + "challenges:"
# passkeys, all "<service sid>:<base64url>": a pending registration challenge -> YF (TTL), an
# authentication challenge -> YC (TTL), a registered credential id -> YF
PASSKEY_REGISTRATION_PREFIX = PREFIX + "pk-reg:"
PASSKEY_CHALLENGE_PREFIX = PREFIX + "pk-chal:"
PASSKEY_CREDENTIAL_PREFIX = PREFIX + "pk-cred:"
# string: a push factor's credential sid (CR…, the kid of its device JWTs) -> factor sid (YF…)
FACTOR_CREDENTIAL_PREFIX = PREFIX + "factor-cred:"
# counter with TTL: factor creations of one entity on one UTC day ("<VA>:<identity>:<yyyymmdd>")
FACTOR_CREATIONS_PREFIX = PREFIX + "factor-creations:"
# string with TTL: a push enrolment access token (YK…) as JSON (its token sealed)
ACCESS_TOKEN_PREFIX = PREFIX + "access-token:"
# string with TTL: sha256 of an access token's value -> its YK sid (consumed by factor creation)
ACCESS_TOKEN_VALUE_PREFIX = PREFIX + "access-token-value:"
# set of all application ids
APPS_SET = PREFIX + "apps"
# string: api_key -> application id
APIKEY_PREFIX = PREFIX + "apikey:"
# string "<version>:<state JSON>": one verification (older versions wrote a hash {v, s})
VERIFICATION_PREFIX = PREFIX + "ver:"
# string: "<app>:<to>" -> request id of the verification still pending for that destination
ACTIVE_PREFIX = PREFIX + "active:"
# string with TTL: a JWT id already accepted (replay cache)
JTI_PREFIX = PREFIX + "jti:"
# hash: a tenant's fraud policy (geo = allowed calling codes "44,1"; bypass = "1" when the
# per-request fraud_check=false / RiskCheck=disable is honoured); tenant = app id or VA sid
FRAUD_POLICY_PREFIX = PREFIX + "fraud-policy:"
# sorted set with TTL: start times in one sliding window ("n:<hash of tenant:destination>" or
# "ip:<hash>")
FRAUD_WINDOW_PREFIX = PREFIX + "fw:"
# hash with TTL: "<tenant>:<calling code>" -> s<bucket> starts and c<bucket> completions
FRAUD_CC_PREFIX = PREFIX + "fcc:"
# sorted set with TTL: failed Basic-auth attempts ("u:<hash>" per username, "ip:<hash>")
AUTH_FAIL_PREFIX = PREFIX + "authfail:"
# string with TTL: a throttled Basic username or IP; the value is when the block ends (ms)
AUTH_BLOCK_PREFIX = PREFIX + "authblock:"
# pub/sub: "<block key> <until ms>" whenever a block is set (serve processes keep a copy)
AUTH_BLOCK_CHANNEL = PREFIX + "authblocks"
# string: silent-auth session token -> request id (single use, TTL)
SA_SESSION_PREFIX = PREFIX + "sa:"
# string: sandbox operator authorization code -> device result (single use)
SANDBOX_OP_CODE_PREFIX = PREFIX + "sbop:"
# list: sandbox outbox of one tenant and destination, newest first
OUTBOX_PREFIX = PREFIX + "outbox:"
# string: Twilio-dialect webhook subscription (YW…) as JSON
TWILIO_WEBHOOK_PREFIX = PREFIX + "tw-wh:"
# sorted set: a service's webhook subscriptions (YW…) by creation time
SERVICE_WEBHOOKS_PREFIX = PREFIX + "svc-whs:"
# hash: one webhook message (url, body, attempts)
WEBHOOK_PREFIX = PREFIX + "wh:"
# sorted set: webhook messages whose attempts were exhausted, by time
WEBHOOK_FAILED_SET = PREFIX + "wh-failed"
# string: the generated key behind code hashes when VERIFY_SECRET_KEY is not set
SERVER_KEY = PREFIX + "server-key"
# pub/sub channel: "a job is due now", so workers need not wait for their poll
WAKE_CHANNEL = PREFIX + "wake"
# hash per account: "t:<template uuid>" -> the template as JSON (its fragments inside), and
# "default" -> the uuid of the account's default template (Vonage templates, Twilio TemplateSid)
TEMPLATES_PREFIX = PREFIX + "tpls:"
# autoscaling gauges (web /metrics, orchestrator/http/metrics.py), kept by the workers:
# string per worker: the jobs it holds (claimed, end not yet written); its TTL is refreshed by
# every claim and end, so a killed worker's count goes when its jobs' in-progress keys would
WORKER_JOBS_PREFIX = PREFIX + "wjobs:"
# sorted set: worker id -> ms its WORKER_JOBS_PREFIX key expires (the live ones to sum)
WORKERS_SET = PREFIX + "workers"
# sorted set: webhook message id -> ms its next attempt is due (deliver_webhook deferred it)
WEBHOOK_RETRY_SET = PREFIX + "wh-retry"


def hashed_key_part(value: str) -> str:
    """Personal data (a destination, an IP, a username) as it may appear in a key name: a
    digest, never the value itself."""
    return hashlib.sha256(value.encode()).hexdigest()[:24]
