"""Edit, reply and mentions (v1.1): edited_at, reply_to and mentions on messages, and the
mention table behind `unread_mentions` (see MessageMention)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('messaging', '0005_idempotency_per_conversation'),
    ]

    operations = [
        migrations.AddField(
            model_name='message',
            name='edited_at',
            field=models.BigIntegerField(blank=True, help_text='ms of the last edit; null if never edited', null=True),
        ),
        migrations.AddField(
            model_name='message',
            name='mentions',
            field=models.JSONField(blank=True, help_text='user ids mentioned at send time', null=True),
        ),
        migrations.AddField(
            model_name='message',
            name='reply_to',
            field=models.JSONField(blank=True, help_text='{message_id, seq, sender_id} replied to', null=True),
        ),
        migrations.CreateModel(
            name='MessageMention',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('message_id', models.BigIntegerField()),
                ('conversation_id', models.CharField(max_length=40)),
                ('seq', models.BigIntegerField()),
                ('user_id', models.BigIntegerField()),
            ],
            options={
                'db_table': 'message_mentions',
                'indexes': [models.Index(fields=['user_id', 'conversation_id', 'seq'], name='mention_user_conv_seq_idx')],
                'constraints': [models.UniqueConstraint(fields=('message_id', 'user_id'), name='mention_message_user_uniq')],
            },
        ),
    ]
