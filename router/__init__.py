"""Routing: which agent takes a conversation, the queue of those waiting, and automations."""
