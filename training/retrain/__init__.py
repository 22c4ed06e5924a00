"""`auscult retrain`: fine-tune the served audio bundle on operators' labels and promote it only
when it beats the bundle in service."""
