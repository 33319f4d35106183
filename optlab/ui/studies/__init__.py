"""The Studies page: settings, the server's study jobs, and the live results."""
