"""Model providers and AI steps: the provider client, guardrails and (with AI_AGENT) the tool loop."""
