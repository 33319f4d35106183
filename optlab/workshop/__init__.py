"""A workshop past one process: OptLab replicas behind HAProxy, with failover.

Streamlit keeps each browser's session in one server process, so serving
more attendees than one process can means several ``streamlit run``
replicas on loopback ports behind HAProxy, which keeps each browser on its
replica with a cookie and moves it to a live one when its replica dies.
The replicas share one runs folder, so an attendee whose replica died
resumes their run from its last autosave on another one
(`optlab.train.autosave`).

- `config`: the workshop's settings (`WorkshopConfig`) and the HAProxy
  configuration they give (`haproxy_config`).
- `supervisor`: starts the replicas and HAProxy, restarts whichever dies,
  stops them all (`Workshop`).

``python -m optlab workshop`` (`optlab.cli.workshop`) runs it; ``make
workshop REPLICAS=N`` calls that. Nothing here imports Streamlit or torch.
"""
