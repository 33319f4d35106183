"""OptLab's entry point: page config and explicit page registration."""

import streamlit as st

from optlab.ui.address_bar import link_params
from optlab.ui.engine import warm_up
from optlab.ui.reconnect import first_run
from optlab.ui.room import push
from optlab.ui.room.panel import FIRST_VISIT, ROOM_PATH, room_panel
from optlab.ui.turns import page_turn
from optlab.ui.view import keep_view_in_link, start_view

# Streamlit starts each process in its legacy pages/-folder mode, where a deep
# link named after a file (/update_rules) would run that script without this
# one. URL paths unlike the file names make such links fall through to app.py,
# whose st.navigation then routes them (tests/test_browser.py checks this).
pages = [
    st.Page(
        "pages/playground.py",
        title="Surface Playground",
        icon=":material/landscape:",
        default=True,
    ),
    st.Page(
        "pages/cnn.py",
        title="CNN lab",
        icon=":material/neurology:",
        url_path="cnn-lab",
    ),
    st.Page(
        "pages/sweep.py",
        title="Sweeps",
        icon=":material/grid_on:",
        url_path="sweeps",
    ),
    st.Page(
        "pages/studies.py",
        title="Studies",
        icon=":material/query_stats:",
        url_path="studies",
    ),
    # Not pages/lessons.py: /lessons must never name a file (see above).
    st.Page(
        "pages/lessons_page.py",
        title="Lessons",
        icon=":material/school:",
        url_path="lessons",
    ),
    st.Page(
        "pages/update_rules.py",
        title="Update rules",
        icon=":material/functions:",
        url_path="rules",
    ),
    st.Page(
        "pages/room.py",
        title="Room",
        icon=":material/groups:",
        url_path=ROOM_PATH,
    ),
]

# A script runs Python only in its turn: the event loop, which answers the health
# check and carries every page's messages, never waits behind a whole class's
# scripts for the interpreter (optlab.turns).
with page_turn():
    start_view()
    warm_up()
    page = st.navigation(pages)
    keep_view_in_link()
    # A page that outlived its session keeps the change it sends (optlab.ui.reconnect).
    with first_run():
        # The room panel sits in every page's sidebar, and keeps the room in every link.
        room_panel(page, pages)
        page.run()
    # The presenter's push is sent when the page mirrors its link (optlab.ui.room.push);
    # a page that mirrors none (Update rules) is pushed here, as its address bar stands.
    push.after_page(link_params(), mirrors=page.url_path in FIRST_VISIT)
