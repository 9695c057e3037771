"""Named groups of points in MediaPipe's 478-point face mesh (its published topology)."""

FACE_OVAL = (
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
)
CHIN = 152
MOUTH_CORNERS = (61, 291)
MOUTH_CORNERS_ALL = (61, 291, 78, 308)
INNER_LIP_MID = (13, 14)
OUTER_UPPER_LIP = (185, 40, 39, 37, 0, 267, 269, 270, 409)
OUTER_LOWER_LIP = (146, 91, 181, 84, 17, 314, 405, 321, 375)
INNER_UPPER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LOWER_LIP = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
# The lips' outer outlines from corner to corner, left to right.
OUTER_UPPER_OUTLINE = (MOUTH_CORNERS[0], *OUTER_UPPER_LIP, MOUTH_CORNERS[1])
OUTER_LOWER_OUTLINE = (MOUTH_CORNERS[0], *OUTER_LOWER_LIP, MOUTH_CORNERS[1])
UPPER_LIP = OUTER_UPPER_LIP + INNER_UPPER_LIP[1:-1]
LOWER_LIP = OUTER_LOWER_LIP + INNER_LOWER_LIP[1:-1]
# Upper-lid point and the lower-lid point below it, for the eye on the image's left and right.
LEFT_EYELID_PAIRS = ((161, 163), (160, 144), (159, 145), (158, 153), (157, 154), (246, 7), (173, 155))
RIGHT_EYELID_PAIRS = ((388, 390), (387, 373), (386, 374), (385, 380), (384, 381), (466, 249), (398, 382))
LEFT_BROW = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)
RIGHT_BROW = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)
# The opening between the lips, walked once around: upper inner lip left to right, lower back.
MOUTH_OPENING = INNER_UPPER_LIP + tuple(reversed(INNER_LOWER_LIP[1:-1]))
# Plain skin on both cheeks, for sampling the face's light and tint.
CHEEKS = (50, 101, 205, 280, 330, 425)
