"""The playground's "Submit to the challenge" button, for an attendee of a room
with an open challenge.

The button sends the run's share link and what the page shows (each
optimizer's first step below the target); the store reruns the link in the
engine and records only what its own run confirms.
"""

from __future__ import annotations

import streamlit as st

from optlab.links.playground import config_to_params
from optlab.rooms import RoomError, config_for, reached_in
from optlab.surface.run import SurfaceRunConfig
from optlab.surface.trajectory import Trajectory
from optlab.ui.engine import engine_slot
from optlab.ui.room import state as room


def submit_section(cfg: SurfaceRunConfig, trajectories: list[Trajectory]) -> None:
    """The challenge and its submit button (nothing outside a room's open challenge)."""
    me = room.member()
    if me is None or me.presenter:
        return
    store = room.room_store()
    try:
        now = store.state(me.code)
    except RoomError:
        return  # the panel says why the session left the room
    challenge = now.challenge
    if challenge is None:
        return
    st.subheader("Room challenge")
    st.write(f"{challenge.text}.")
    link = {k: v if isinstance(v, list) else [v] for k, v in config_to_params(cfg).items()}
    try:
        config_for(challenge, link)
    except ValueError as err:
        st.info(f"This run cannot be submitted: {err}.", icon=":material/info:")
        return
    claims = reached_in(trajectories, challenge.target)
    if claims:
        shown = ", ".join(
            f"{t.optimizer.label} at step {claims[t.optimizer.to_text()]}"
            for t in trajectories
            if t.optimizer.to_text() in claims
        )
        st.write(f"Below f = {challenge.target:g}: {shown}.")
    else:
        st.write(f"No optimizer of this run gets below f = {challenge.target:g} yet.")
    if st.button(
        "Submit to the challenge",
        key="room_submit",
        type="primary",
        disabled=not claims,
        icon=":material/emoji_events:",
    ):
        try:
            # The server's rerun shares the engine's slots with everyone's runs.
            with engine_slot():
                results = store.submit(me.code, me.attendee, link, claims)
        except RoomError as err:
            st.error(str(err), icon=":material/error:")
        else:
            done = ", ".join(f"{r.optimizer}: {r.steps} steps" for r in results)
            st.success(f"Submitted and verified by the server: {done}.")
