"""The agents' and managers' back office: search, customer pages, queues, actions, reports."""
