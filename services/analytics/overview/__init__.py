"""The round overview for KL's operator (issue 22): one round's deliveries, frame, allocation,
sample, messages, answers and phase, per municipality and in total.

Built only from events (round.defined, delivery.accepted, sampling.progress, dispatch.progress,
and analytics' own invited/answered facts from invitation.sent and response.submitted), never by
reading another service's tables: every source sends whole snapshots of its counts, and the
overview keeps the latest of each, so a replay changes nothing."""
