"""Reports and follow-ups coming in: chatbot events, inbound email, attachments."""
