"""The Lessons page's Streamlit helpers: the link, the controls, the lesson's run and display."""
