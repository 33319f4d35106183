"""Workshop rooms in the app: the sidebar panel on every page, the Room page's
sections and the playground's submit button (the engine is `optlab.rooms`)."""
