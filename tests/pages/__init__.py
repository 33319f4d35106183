"""Tests of the pages (pages/ and optlab.ui), in Streamlit's AppTest."""
