"""The fleet controller: reach many hosts over SSH, run the agent there, aggregate what it reports."""
