-- Which Crisp websites an account, and a key, may act on: a Marketplace (plugin) token often
-- reaches many websites, and a caller's `websiteID` goes upstream with the account's token.
-- Keep in step with ../postgres/0006_websites.sql (a test compares the two).

-- Website ids (comma-separated) the account may act on besides its own `website_id`;
-- null: its own website only.
alter table crisp_account add column allowed_websites text;

-- Website ids (comma-separated) the key is narrowed to, within its account's; null: no narrowing.
alter table api_key add column allowed_websites text;
