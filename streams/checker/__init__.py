"""The judging pipeline without Faust: judge, holds, the deadline index, batches, staged
state and in-order acknowledgement. Tables are plain mappings and sending is a coroutine,
so everything here is tested with dicts; ``consentinel.streams.worker`` wires it to Faust."""
