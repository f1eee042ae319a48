"""Single sign-on for the admin: OpenID Connect, LDAP bind, directory groups mapped to roles."""
