"""Room: a presenter shares setups and challenges with a class; attendees join by code."""

import streamlit as st

from optlab.ui.room import sections
from optlab.ui.room.state import member

st.title("Workshop room")
me = member()
if me is None:
    sections.start()
elif me.presenter:
    sections.presenter(me)
else:
    sections.attendee(me)
