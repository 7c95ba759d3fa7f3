-- Wake every replica at once when a change is logged: the gateway LISTENs on this channel and
-- reads the change log right away, instead of waiting for its next periodic poll.
create function crisp_gateway_notify_change() returns trigger as $$
begin
    perform pg_notify('crisp_gateway_changes', new.change_id::text);
    return new;
end;
$$ language plpgsql;

create trigger change_log_notify after insert on change_log
    for each row execute function crisp_gateway_notify_change();
