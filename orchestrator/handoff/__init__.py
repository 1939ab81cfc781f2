"""The desktop handoff: a hosted page that carries a silent-auth check to the user's phone.

Silent auth needs the request to leave over the phone's mobile data, so a user who started on a
computer scans a QR code (or is texted a link), verifies on the phone and the desktop resumes.
Nothing is imported here: the route module is registered by the app factory alone.
"""
