"""Login throttling (登录限速): failed logins counted per login name and per client address.

A fixed window per key: after `per_login` failures for one login name, or `per_address`
failures from one client (IPv4 address, IPv6 /64: hub.api.Limiter.key), further attempts are
refused with 429 until that key's window (`window_s` from its first failure) is over. An
attempt is counted as a failure when it is let through (`attempt`), before its password is
checked, so attempts sent at once cannot all pass the check while argon2 runs; a right password
then takes its attempt back from its address and clears its login name's count.

Memory is bounded: at most `max_keys` entries; keys whose window is over are forgotten first;
when the table is full of live keys, newcomers share one overflow entry per kind, so flooding
the table with fresh names or addresses locks the flooders out together instead of resetting
anyone's count."""

from __future__ import annotations

from iobase.throttle import AttemptThrottle


class LoginThrottle(AttemptThrottle):
    """Failed operator logins per login name and per client address (iobase.throttle)."""

    def __init__(self, per_login: int = 5, per_address: int = 20, window_s: float = 900.0, max_keys: int = 10_000):
        super().__init__(per_login, per_address, window_s, max_keys)
