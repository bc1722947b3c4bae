"""Idempotency per (sender, conversation, client_msg_id).

On a Redis Cluster the idempotency record lives in the conversation's slot group, so a
client_msg_id reused in another conversation is assigned a new seq there; with the old
(sender, client_msg_id) key MySQL then ignored that acknowledged message and left a gap."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('messaging', '0004_message_search'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The new key first: a send is never without one while this runs.
        migrations.AddConstraint(
            model_name='message',
            constraint=models.UniqueConstraint(fields=('sender', 'conversation_id', 'client_msg_id'), name='messages_sender_conv_cmid_uniq'),
        ),
        migrations.RemoveConstraint(
            model_name='message',
            name='messages_sender_cmid_uniq',
        ),
    ]
