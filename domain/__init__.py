"""The domain both the API and the worker rely on, importable without torch: what a ticket may
ask for. (The service layer's tickets, jobs and audit still live in `api/`: issue 15.)"""
