-- Members who joined in Membership Screening while an auto-role was set, owed it once they accept the
-- server's rules: the row lets the bot give it even when it was offline at that moment. A row goes
-- once the role is given (or there is nothing to give), and with the member's other data on leaving.
CREATE TABLE autorole_waiting (
  user_id INTEGER PRIMARY KEY
) STRICT;
