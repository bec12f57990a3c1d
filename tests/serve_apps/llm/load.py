"""Chat load against a deployed LLM app while the catalog actor is killed, and the check
that every request's usage landed exactly once (issue 13's kill test)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx
import ray

#: A short system message: SmolLM2's chat template otherwise adds its own (38 prompt
#: tokens a chat instead of 25), and on 2 CPU cores prefill is most of the engine's work
#: for these one-token replies: 256 chats took vLLM 11.4 s with the template's system
#: message and 7.4 s with this one (offline ``LLM.chat``, two runs each).
SYSTEM = {"role": "system", "content": "Be brief."}


@dataclass
class KillRun:
    """What a :func:`chat_while_killing` run saw."""

    statuses: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    kills: int = 0
    seconds: float = 0.0
    emissions_g: list[float] = field(default_factory=list)


def chat_while_killing(url: str, key: str, model: str, handle, *, requests: int,
                       concurrency: int, kills: int) -> KillRun:
    """Send ``requests`` one-token chat requests at ``concurrency`` to ``url``
    (``.../openai/v1``) with ``key``, killing the catalog actor ``handle`` (Ray restarts
    it) ``kills`` times, evenly over the run's progress."""
    run = KillRun()
    every = requests // (kills + 1)

    async def main() -> None:
        done = 0
        next_kill = every
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(base_url=url, timeout=300,
                                     headers={"Authorization": f"Bearer {key}"}) as http:
            async def one(i: int) -> None:
                nonlocal done, next_kill
                async with gate:
                    r = await http.post("/chat/completions", json={
                        "model": model, "max_tokens": 1, "temperature": 0,
                        "messages": [SYSTEM, {"role": "user", "content": f"Count to {i}."}]})
                run.statuses.append(r.status_code)
                if r.status_code == 200:
                    body = r.json()
                    run.prompt_tokens += body["usage"]["prompt_tokens"]
                    run.completion_tokens += body["usage"]["completion_tokens"]
                    run.emissions_g.append(body["carbon_emissions_g"])
                done += 1
                if run.kills < kills and done >= next_kill:
                    next_kill += every
                    run.kills += 1
                    ray.kill(handle, no_restart=False)

            await asyncio.gather(*(one(i) for i in range(requests)))

    started = time.monotonic()
    asyncio.run(main())
    run.seconds = time.monotonic() - started
    return run
