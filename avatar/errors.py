"""The one exception type for problems a user can cause and fix themselves."""


class UserFacingError(Exception):
    """A problem with the user's input or situation, with a message written for them.

    The page shows `str(error)` as it is; anything else that escapes is a bug and stays loud.
    """
