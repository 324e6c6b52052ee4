"""What the reporter hears and sees: status emails, the chatbot callback, the reporter-facing ticket view."""
